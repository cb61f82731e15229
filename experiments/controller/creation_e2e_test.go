//go:build sandbox

package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"faultline.dev/faultline/deploy"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/catalog"
	"faultline.dev/faultline/sandbox"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

var experimentsGVR = schema.GroupVersionResource{Group: v1alpha1.GroupVersion.Group, Version: v1alpha1.GroupVersion.Version, Resource: "experiments"}

// creationPath is one way users put an Experiment into a cluster.
type creationPath struct {
	name string
	// create creates the object of file (the manifest as written).
	create func(t *testing.T, file string) (string, int)
	// reapply sends the same manifest again, as CI and GitOps tools do
	// on every sync; nil for a path that only creates.
	reapply func(t *testing.T, file string) (string, int)
	// change sends a changed manifest of an existing experiment.
	change func(t *testing.T, file string) (string, int)
}

// actsWithin bounds the wait for the controller to take an experiment up
// (its first phase) or to let it go (its finalizer). The test is that it
// does at all (a controller that wrote the spec never took one up); it is
// not a speed target. Idle, it takes a second or two; with the catalog's
// variants all created at once beside the rollout gate's 200 req/s on two
// cores, it once took more than 10 s.
const actsWithin = time.Minute

func creationPaths(t *testing.T, env *sandboxtest.Env, c client.Client) []creationPath {
	kubectl := func(args ...string) func(*testing.T, string) (string, int) {
		return func(t *testing.T, file string) (string, int) {
			return sandboxtest.Kubectl(t, env, append(args, "-f", file)...)
		}
	}
	// The typed Go client: faultline's catalog and Schedule controller.
	typed := func(update bool) func(*testing.T, string) (string, int) {
		return func(t *testing.T, file string) (string, int) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var exp v1alpha1.Experiment
			if err := yaml.UnmarshalStrict(b, &exp); err != nil {
				t.Fatal(err)
			}
			if update {
				var cur v1alpha1.Experiment
				if err := c.Get(context.Background(), client.ObjectKeyFromObject(&exp), &cur); err != nil {
					t.Fatal(err)
				}
				cur.Spec = exp.Spec
				err = c.Update(context.Background(), &cur)
			} else {
				err = c.Create(context.Background(), &exp)
			}
			if err != nil {
				return err.Error(), 1
			}
			return "", 0
		}
	}
	return []creationPath{
		{name: "kubectl create", create: kubectl("create"), change: kubectl("apply")},
		{name: "kubectl apply", create: kubectl("apply"), reapply: kubectl("apply"), change: kubectl("apply")},
		{name: "kubectl apply --server-side", create: kubectl("apply", "--server-side"), reapply: kubectl("apply", "--server-side"), change: kubectl("apply", "--server-side")},
		{name: "the typed Go client", create: typed(false), change: typed(true)},
	}
}

// shippedExperiments are the Experiment documents of deploy/examples,
// which the catalog runs too.
func shippedExperiments(t *testing.T) map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	files, err := filepath.Glob(filepath.Join(sandboxtest.RepoRoot(), "deploy", "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := deploy.Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, d := range docs {
			if d.GetKind() == "Experiment" {
				out[filepath.Base(f)] = d
			}
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d example experiments", len(out))
	}
	return out
}

// killSwitchOn turns the kill switch on for the test: every experiment is
// taken up (finalizer, validation, status) and refused before it touches a
// target, so that all of them can be created at once on a shared sandbox.
func killSwitchOn(t *testing.T, c client.Client) {
	t.Helper()
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: sandbox.FaultlineNamespace, Name: "faultline-kill-switch"}, Data: map[string]string{"enabled": "true"}}
	if err := c.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Delete(ctx, cm); err != nil {
			t.Errorf("kill switch left on: %v", err)
		}
	})
}

// ensureNamespace creates ns unless it exists, and removes it after the
// test if it made it.
func ensureNamespace(t *testing.T, c client.Client, ns string) {
	t.Helper()
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
	err := c.Create(context.Background(), n)
	if apierrors.IsAlreadyExists(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), n) })
}

// specOf reads an experiment's spec as the API server stores it.
func specOf(t *testing.T, dyn dynamic.Interface, ns, name string) (*unstructured.Unstructured, string) {
	t.Helper()
	u, err := dyn.Resource(experimentsGVR).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(u.Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	return u, string(b)
}

// specWriters are the field managers that own any field of the spec.
func specWriters(u *unstructured.Unstructured) []string {
	var out []string
	for _, mf := range u.GetManagedFields() {
		if mf.FieldsV1 != nil && strings.Contains(string(mf.FieldsV1.Raw), `"f:spec"`) {
			out = append(out, fmt.Sprintf("%s (%s)", mf.Manager, mf.Operation))
		}
	}
	return out
}

// Under the kill switch, on a sandbox of its own: every experiment is
// taken up and validated, then refused before it touches a target.
func TestEveryShippedExperimentIsTakenUpHoweverAUserCreatesIt(t *testing.T) {
	sandboxtest.Parallel(t)
	env := sandboxtest.Own(t, "paths", nil)
	c := kube(t, env)
	dyn := dynamic.NewForConfigOrDie(env.RESTConfig)
	killSwitchOn(t, c)
	t.Run("every example through kubectl create, apply, apply --server-side and the typed client", func(t *testing.T) { examplesByEveryPath(t, env, c, dyn) })
	t.Run("every catalog variant through the catalog's typed client", func(t *testing.T) { catalogVariants(t, env, c, dyn) })
}

func examplesByEveryPath(t *testing.T, env *sandboxtest.Env, c client.Client, dyn dynamic.Interface) {
	examples := shippedExperiments(t)
	for _, ex := range examples {
		ensureNamespace(t, c, ex.GetNamespace())
	}
	for i, path := range creationPaths(t, env, c) {
		for file, ex := range examples {
			t.Run(path.name+"/"+file, func(t *testing.T) {
				t.Parallel()
				doc := ex.DeepCopy()
				// kubectl apply cannot use generateName; each path has a
				// name of its own. The spec is the file's, untouched.
				base := strings.TrimSuffix(doc.GetName()+doc.GetGenerateName(), "-")
				doc.SetName(fmt.Sprintf("%s-path%d", base, i))
				doc.SetGenerateName("")
				ns, name := doc.GetNamespace(), doc.GetName()
				manifest := writeYAML(t, doc.Object)
				t.Cleanup(func() {
					_ = dyn.Resource(experimentsGVR).Namespace(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
				})

				if out, code := path.create(t, manifest); code != 0 {
					t.Fatalf("%s refused the example (exit %d): %s", path.name, code, out)
				}
				_, stored := specOf(t, dyn, ns, name)

				var exp v1alpha1.Experiment
				sandboxtest.WaitFor(t, actsWithin, "the experiment to reach a phase", func() bool {
					return c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &exp) == nil && exp.Status.Phase != ""
				})
				if !hasTimelineReason(&exp, "Accepted") || !hasTimelineReason(&exp, "KillSwitch") {
					t.Fatalf("the controller did not accept and validate it: phase %s, %s", exp.Status.Phase, exp.Status.Message)
				}
				ready := meta.FindStatusCondition(exp.Status.Conditions, v1alpha1.ConditionReady)
				if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != "KillSwitch" {
					t.Errorf("Ready = %+v, want False with reason KillSwitch", ready)
				}
				u, now := specOf(t, dyn, ns, name)
				if now != stored {
					t.Errorf("the spec changed after creation:\nstored: %s\nnow:    %s", stored, now)
				}
				if w := specWriters(u); len(w) != 1 {
					t.Errorf("the spec has %d writers, want only its creator: %v", len(w), w)
				}
				if len(u.GetFinalizers()) != 1 || u.GetFinalizers()[0] != v1alpha1.Finalizer {
					t.Errorf("finalizers %v, want [%s]", u.GetFinalizers(), v1alpha1.Finalizer)
				}

				if path.reapply != nil {
					out, code := path.reapply(t, manifest)
					if code != 0 {
						t.Errorf("re-applying the unchanged manifest failed (exit %d): %s", code, out)
					}
					if again, _ := specOf(t, dyn, ns, name); again.GetGeneration() != u.GetGeneration() {
						t.Errorf("re-applying the unchanged manifest moved the generation from %d to %d", u.GetGeneration(), again.GetGeneration())
					}
				}

				changed := doc.DeepCopy()
				faults, _, _ := unstructured.NestedSlice(changed.Object, "spec", "faults")
				faults[0].(map[string]any)["duration"] = "17s"
				if err := unstructured.SetNestedSlice(changed.Object, faults, "spec", "faults"); err != nil {
					t.Fatal(err)
				}
				out, code := path.change(t, writeYAML(t, changed.Object))
				if code == 0 || !strings.Contains(out, "spec is immutable: create a new experiment instead") {
					t.Errorf("a changed spec was not refused with the immutability message (exit %d): %s", code, out)
				}
				if after, spec := specOf(t, dyn, ns, name); spec != stored || after.GetGeneration() != u.GetGeneration() {
					t.Errorf("the refused change touched the experiment: generation %d to %d", u.GetGeneration(), after.GetGeneration())
				}

				if err := dyn.Resource(experimentsGVR).Namespace(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
				sandboxtest.WaitFor(t, actsWithin, "the experiment to be gone (the finalizer removed)", func() bool {
					_, err := dyn.Resource(experimentsGVR).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
					return apierrors.IsNotFound(err)
				})
			})
		}
	}
}

// catalogVariants binds every landed catalog variant to a namespace of the
// test, as `faultline catalog run` binds it, and creates it through the
// catalog's own typed client.
func catalogVariants(t *testing.T, env *sandboxtest.Env, c client.Client, dyn dynamic.Interface) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	// Never queried: the kill switch stops every variant before.
	b := catalog.Bindings{SandboxDir: env.State.Config.Dir(), PrometheusURL: "http://127.0.0.1:9"}
	n := 0
	for _, s := range cat.Scenarios {
		if !s.IsLanded() {
			continue
		}
		for _, v := range s.Variants {
			n++
			ns := fmt.Sprintf("catalog-paths-%d", n)
			run, err := s.Prepare(v, ns, b)
			if err != nil {
				t.Fatalf("%s/%s: %v", s.Name, v.Name, err)
			}
			t.Run(s.Name+"/"+v.Name, func(t *testing.T) {
				t.Parallel()
				ensureNamespace(t, c, run.Experiment.Namespace)
				exp := run.Experiment
				if err := c.Create(context.Background(), exp); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = c.Delete(context.Background(), exp) })
				_, stored := specOf(t, dyn, exp.Namespace, exp.Name)
				sandboxtest.WaitFor(t, actsWithin, "the experiment to reach a phase", func() bool {
					return c.Get(context.Background(), client.ObjectKeyFromObject(exp), exp) == nil && exp.Status.Phase != ""
				})
				if !hasTimelineReason(exp, "KillSwitch") {
					t.Fatalf("the controller did not accept and validate it: phase %s, %s", exp.Status.Phase, exp.Status.Message)
				}
				u, now := specOf(t, dyn, exp.Namespace, exp.Name)
				if now != stored {
					t.Errorf("the spec changed after creation:\nstored: %s\nnow:    %s", stored, now)
				}
				if w := specWriters(u); len(w) != 1 {
					t.Errorf("the spec has %d writers, want only its creator: %v", len(w), w)
				}
			})
		}
	}
}

func hasTimelineReason(exp *v1alpha1.Experiment, reason string) bool {
	for _, e := range exp.Status.Timeline {
		if e.Reason == reason {
			return true
		}
	}
	return false
}

func writeYAML(t *testing.T, obj map[string]any) string {
	t.Helper()
	b, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
