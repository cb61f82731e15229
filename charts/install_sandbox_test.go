//go:build sandbox

package charts_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"helm.sh/helm/v3/pkg/chartutil"

	"faultline.dev/faultline/analyzers/report"
	"faultline.dev/faultline/charts"
	"faultline.dev/faultline/deploy"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/sandbox"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// installSandbox brings up a sandbox of its own with faultline installed
// from the chart: the shared one runs faultline as processes, and two
// controllers must never judge the same experiments.
func installSandbox(t *testing.T) (*sandbox.State, *rest.Config) {
	t.Helper()
	sandboxtest.RequireRoot(t)
	bins, err := sandboxtest.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	c := sandbox.DefaultConfig()
	c.Name, c.RealNodes, c.SharedKwokNodes, c.IsolatedKwokNodes = "chart", 1, 1, 0
	c.Timings, c.Install, c.BinDir = sandbox.TimingsFast, true, bins
	_ = sandbox.Down(c, nil) // a leftover of a killed run
	st, err := sandbox.Up(context.Background(), c, sandbox.NewProgress(os.Stderr), false)
	if err != nil {
		t.Fatalf("sandbox up --install: %v", err)
	}
	t.Cleanup(func() {
		if err := sandbox.Down(c, sandbox.NewProgress(os.Stderr)); err != nil {
			t.Errorf("sandbox down: %v", err)
		}
	})
	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return st, cfg
}

// resources maps each object to the dynamic client of its resource, in
// its namespace when it has one.
func resources(cfg *rest.Config) func(*unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(cfg)))
	dyn := dynamic.NewForConfigOrDie(cfg)
	return func(o *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return nil, err
		}
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			return dyn.Resource(m.Resource).Namespace(o.GetNamespace()), nil
		}
		return dyn.Resource(m.Resource), nil
	}
}

// dryRun server-side applies every object with dryRun=All: the API
// server's own schema, admission and CEL rules judge them, and nothing is
// stored.
func dryRun(t *testing.T, cfg *rest.Config, manifests string) int {
	t.Helper()
	objs, err := deploy.Decode([]byte(manifests))
	if err != nil {
		t.Fatal(err)
	}
	resource := resources(cfg)
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		ri, err := resource(o)
		if err != nil {
			t.Errorf("%s %s: %v", gvk.Kind, o.GetName(), err)
			continue
		}
		b, err := json.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		force := true
		if _, err := ri.Patch(context.Background(), o.GetName(), "application/apply-patch+yaml", b,
			metav1.PatchOptions{FieldManager: "faultline-dry-run", Force: &force, DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Errorf("server-side dry run of %s %s: %v", gvk.Kind, o.GetName(), err)
		}
	}
	return len(objs)
}

func TestTheChartInstallsRunsAVerdictAndUninstallsClean(t *testing.T) {
	st, cfg := installSandbox(t)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(cfg)
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(c.Scheme()); err != nil {
		t.Fatal(err)
	}

	t.Run("every rendered manifest passes a server-side dry run, with the defaults and with every option", func(t *testing.T) {
		// The ServiceMonitor's kind comes from the Prometheus Operator's CRD,
		// made by controller-gen from its API (make generate-thirdparty).
		sm, err := os.ReadFile(filepath.Join("testdata", "crds", "monitoring.coreos.com_servicemonitors.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := deploy.Apply(ctx, cfg, sm); err != nil {
			t.Fatalf("install the ServiceMonitor CRD: %v", err)
		}
		sandboxtest.WaitFor(t, 30*time.Second, "the ServiceMonitor kind to be served", func() bool {
			rl, err := cs.Discovery().ServerResourcesForGroupVersion("monitoring.coreos.com/v1")
			return err == nil && len(rl.APIResources) > 0
		})
		values := map[string]func(*testing.T) map[string]any{
			"default values": func(*testing.T) map[string]any { return nil },
			"every option": func(t *testing.T) map[string]any {
				v, err := chartutil.ReadValuesFile(filepath.Join("faultline", "ci", "all-options-values.yaml"))
				if err != nil {
					t.Fatal(err)
				}
				return v
			},
		}
		for name, v := range values {
			r, err := charts.Render(v(t), sandbox.FaultlineNamespace)
			if err != nil {
				t.Fatal(err)
			}
			n := dryRun(t, cfg, strings.Join(r.CRDs, "\n---\n")+"\n---\n"+r.Manifest)
			t.Logf("%s: %d objects passed the server-side dry run", name, n)
		}
	})

	t.Run("the controller is Ready and an agent pod runs on each real node, none on kwok nodes", func(t *testing.T) {
		d, err := cs.AppsV1().Deployments(sandbox.FaultlineNamespace).Get(ctx, "faultline-controller", metav1.GetOptions{})
		if err != nil || d.Status.ReadyReplicas < 1 {
			t.Fatalf("controller Deployment: %v ready %d", err, d.Status.ReadyReplicas)
		}
		pods, err := cs.CoreV1().Pods(sandbox.FaultlineNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=agent"})
		if err != nil {
			t.Fatal(err)
		}
		on := map[string]int{}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning {
				on[p.Spec.NodeName]++
			}
		}
		for _, n := range st.Nodes {
			want := 0
			if n.Kind == sandbox.NodeReal {
				want = 1
			}
			if on[n.Name] != want {
				t.Errorf("%d running agent pod(s) on %s node %s, want %d", on[n.Name], n.Kind, n.Name, want)
			}
		}
	})

	t.Run("a memory fault pushed past a container's limit runs to a verdict through the in-cluster controller and agent", func(t *testing.T) {
		root := sandboxtest.RepoRoot()
		bins, _ := sandboxtest.Binaries()
		app, err := os.ReadFile(filepath.Join(root, "deploy", "examples", "memory-oom-app.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := deploy.Apply(ctx, cfg, app); err != nil {
			t.Fatal(err)
		}
		sandboxtest.WaitFor(t, 2*time.Minute, "the oom app to be available", func() bool {
			d, err := cs.AppsV1().Deployments("oom").Get(ctx, "web", metav1.GetOptions{})
			return err == nil && d.Status.AvailableReplicas >= 1
		})
		rep := filepath.Join(t.TempDir(), "report.json")
		cmd := exec.Command(filepath.Join(bins, "faultline"), "run", "-f", filepath.Join(root, "deploy", "examples", "memory-oom.yaml"), "--report", rep)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+st.Kubeconfig)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("faultline run: %v, want exit 1 (Failed: the app was OOM-killed)\n%s", err, out)
		}
		b, err := os.ReadFile(rep)
		if err != nil {
			t.Fatal(err)
		}
		var r report.Report
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		kills, _ := strconv.ParseFloat(r.Measurements["oom.kills"], 64)
		if r.Verdict != string(v1alpha1.VerdictFailed) || kills < 1 {
			t.Errorf("verdict %s with oom.kills=%s, want Failed with at least one kill\n%s", r.Verdict, r.Measurements["oom.kills"], out)
		}
		if len(r.Records) != 1 || r.Records[0].Node != "real-0" || r.Records[0].Recovered == nil || r.Records[0].Effect == "" {
			t.Fatalf("records %+v: want one, injected and recovered on real-0 by its agent pod, with its effect", r.Records)
		}
		t.Logf("measured through the chart's pods: oom.kills=%s oom.restarts=%s; %s: %s",
			r.Measurements["oom.kills"], r.Measurements["oom.restarts"], r.Records[0].Target, r.Records[0].Effect)
	})

	t.Run("the agent may touch only FaultAssignments, and report only on its own node's", func(t *testing.T) {
		agent := "system:serviceaccount:" + sandbox.FaultlineNamespace + ":faultline-agent"
		groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + sandbox.FaultlineNamespace, "system:authenticated"}
		tests := map[string]struct {
			attrs authorizationv1.ResourceAttributes
			allow bool
		}{
			"reading any Secret is forbidden":                {authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets"}, false},
			"reading the Secrets of its own namespace too":   {authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets", Namespace: sandbox.FaultlineNamespace}, false},
			"listing pods is forbidden":                      {authorizationv1.ResourceAttributes{Verb: "list", Resource: "pods"}, false},
			"changing a FaultAssignment's spec is forbidden": {authorizationv1.ResourceAttributes{Verb: "update", Group: "faultline.dev", Resource: "faultassignments"}, false},
			"deleting a FaultAssignment is forbidden":        {authorizationv1.ResourceAttributes{Verb: "delete", Group: "faultline.dev", Resource: "faultassignments"}, false},
			"reading Experiments is forbidden":               {authorizationv1.ResourceAttributes{Verb: "get", Group: "faultline.dev", Resource: "experiments"}, false},
			"watching FaultAssignments is allowed":           {authorizationv1.ResourceAttributes{Verb: "watch", Group: "faultline.dev", Resource: "faultassignments"}, true},
			"writing a FaultAssignment's status is allowed":  {authorizationv1.ResourceAttributes{Verb: "update", Group: "faultline.dev", Resource: "faultassignments", Subresource: "status"}, true},
		}
		for name, tc := range tests {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: agent, Groups: groups, ResourceAttributes: &tc.attrs}}
			got, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status.Allowed != tc.allow {
				t.Errorf("%s: allowed=%v (%s), want %v", name, got.Status.Allowed, got.Status.Reason, tc.allow)
			}
		}

		// RBAC cannot tell one agent from another: the admission policy
		// does, from the node its pod-bound token names.
		for _, node := range []string{"real-0", "kwok-0"} {
			fa := &v1alpha1.FaultAssignment{ObjectMeta: metav1.ObjectMeta{Name: "rbac-test-" + node, Labels: map[string]string{v1alpha1.LabelNode: node}},
				Spec: v1alpha1.FaultAssignmentSpec{NodeName: node}}
			if err := c.Create(ctx, fa); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Delete(context.Background(), fa) })
		}
		as := rest.CopyConfig(cfg)
		as.Impersonate = rest.ImpersonationConfig{UserName: agent, Groups: groups,
			Extra: map[string][]string{"authentication.kubernetes.io/node-name": {"real-0"}}}
		ac, err := client.New(as, client.Options{Scheme: c.Scheme()})
		if err != nil {
			t.Fatal(err)
		}
		write := func(name string) error {
			// The real agent of real-0 reports on its assignment too: retry
			// a conflict with it.
			return retry.RetryOnConflict(retry.DefaultRetry, func() error {
				var fa v1alpha1.FaultAssignment
				if err := ac.Get(ctx, client.ObjectKey{Name: name}, &fa); err != nil {
					return err
				}
				fa.Status.ObservedGeneration = fa.Generation
				return ac.Status().Update(ctx, &fa)
			})
		}
		if err := write("rbac-test-real-0"); err != nil {
			t.Errorf("the agent of real-0 reporting on real-0: %v, want allowed", err)
		}
		err = write("rbac-test-kwok-0")
		if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) || err == nil || !strings.Contains(err.Error(), "only the FaultAssignments of its own node") {
			t.Errorf("the agent of real-0 reporting on kwok-0: %v, want refused by the own-node policy", err)
		} else {
			t.Logf("refused as it should be: %v", err)
		}
	})

	t.Run("the controller's rights cover what it does: a traffic URL resolved, experiments deleted, no forbidden call", func(t *testing.T) {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "oom", Name: "web"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
		if err := c.Create(ctx, svc); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(sandboxtest.RepoRoot(), "deploy", "examples", "memory-oom.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var dry v1alpha1.Experiment
		if err := yaml.Unmarshal(b, &dry); err != nil {
			t.Fatal(err)
		}
		// A dry run resolves the Service of traffic.url, and injects nothing.
		dry.GenerateName, dry.Name = "", "dry-with-traffic"
		dry.Spec.DryRun = true
		dry.Spec.Traffic = &v1alpha1.Traffic{URL: "http://web.oom.svc/", Rate: 10}
		if err := c.Create(ctx, &dry); err != nil {
			t.Fatal(err)
		}
		sandboxtest.WaitFor(t, time.Minute, "the dry run's verdict", func() bool {
			return c.Get(ctx, client.ObjectKeyFromObject(&dry), &dry) == nil && dry.Status.Phase.IsFinal()
		})
		if dry.Status.Phase != v1alpha1.PhasePassed || !strings.Contains(dry.Status.Message, "dry run") {
			t.Errorf("dry run ended %s: %s; want Passed as a dry run (the Service resolved)", dry.Status.Phase, dry.Status.Message)
		}
		if dry.Status.TrafficURL == "" {
			t.Error("traffic.url was not resolved to the Service's ClusterIP")
		}
		// Deleting experiments runs the finalizer, which removes their
		// FaultAssignments all at once.
		var exps v1alpha1.ExperimentList
		if err := c.List(ctx, &exps, client.InNamespace("oom")); err != nil {
			t.Fatal(err)
		}
		for i := range exps.Items {
			if err := c.Delete(ctx, &exps.Items[i]); err != nil {
				t.Fatal(err)
			}
		}
		sandboxtest.WaitFor(t, time.Minute, "the deleted experiments (their finalizer done) to be gone", func() bool {
			var left v1alpha1.ExperimentList
			return c.List(ctx, &left, client.InNamespace("oom")) == nil && len(left.Items) == 0
		})
		pods, err := cs.CoreV1().Pods(sandbox.FaultlineNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=controller"})
		if err != nil || len(pods.Items) == 0 {
			t.Fatalf("controller pods: %v (%d)", err, len(pods.Items))
		}
		logs, err := cs.CoreV1().Pods(sandbox.FaultlineNamespace).GetLogs(pods.Items[0].Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(logs), "\n") {
			if strings.Contains(line, "forbidden") {
				t.Errorf("the chart's controller was refused a call it makes: %s", line)
			}
		}
	})

	t.Run("uninstall leaves no faultline object but the CRDs, which the user keeps", func(t *testing.T) {
		r, err := charts.Render(st.InstallValues(), sandbox.FaultlineNamespace)
		if err != nil {
			t.Fatal(err)
		}
		in := &charts.Installer{Kubeconfig: st.Kubeconfig, Namespace: sandbox.FaultlineNamespace}
		if err := in.Uninstall(3 * time.Minute); err != nil {
			t.Fatal(err)
		}
		objs, err := deploy.Decode([]byte(r.Manifest))
		if err != nil {
			t.Fatal(err)
		}
		resource := resources(cfg)
		for _, o := range objs {
			gvk := o.GroupVersionKind()
			ri, err := resource(o)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("%s %s is still there after uninstall (%v)", gvk.Kind, o.GetName(), err)
			}
		}
		// The pods go by garbage collection after their owners.
		sandboxtest.WaitFor(t, 2*time.Minute, "faultline's pods to be gone", func() bool {
			pods, err := cs.CoreV1().Pods(sandbox.FaultlineNamespace).List(ctx, metav1.ListOptions{})
			return err == nil && len(pods.Items) == 0
		})
		secrets, _ := cs.CoreV1().Secrets(sandbox.FaultlineNamespace).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm"})
		if len(secrets.Items) > 0 {
			t.Errorf("%d Helm release Secret(s) left in %s", len(secrets.Items), sandbox.FaultlineNamespace)
		}
		if rl, err := cs.Discovery().ServerResourcesForGroupVersion("faultline.dev/v1alpha1"); err != nil || len(rl.APIResources) < 3 {
			t.Errorf("the CRDs went with the release (%v): Helm keeps them, and with them every experiment", err)
		}
		t.Logf("uninstalled: %d objects gone; CRDs kept", len(objs))
	})
}
