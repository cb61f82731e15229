//go:build sandbox

package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

// optedInNamespace makes a namespace whose pods may be targets.
func optedInNamespace(t *testing.T, c client.Client, prefix string) string {
	t.Helper()
	ns := prefix + "-" + rand.String(5)
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{v1alpha1.LabelChaosEnabled: "enabled"}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}) })
	return ns
}

// warningEvent finds a Warning event of reason about the experiment.
func warningEvent(t *testing.T, c client.Client, exp *v1alpha1.Experiment, reason string) *corev1.Event {
	t.Helper()
	var events corev1.EventList
	if err := c.List(context.Background(), &events, client.InNamespace(exp.Namespace)); err != nil {
		t.Fatal(err)
	}
	for i, e := range events.Items {
		if e.InvolvedObject.UID == exp.UID && e.Type == corev1.EventTypeWarning && e.Reason == reason {
			return &events.Items[i]
		}
	}
	return nil
}

// readyFalse is the Ready condition when it is False with reason.
func readyFalse(exp *v1alpha1.Experiment, reason string) *metav1.Condition {
	c := meta.FindStatusCondition(exp.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != reason {
		return nil
	}
	return c
}

// The controller says so within seconds (the delay is logged); the bound
// here is a minute, so that the test is that it says so at all: a speed
// bound inside a test fails on a loaded machine, not on a slow controller.
func TestADeploymentDeletedBeforeItsFaultStartsIsShownAsTargetGone(t *testing.T) {
	sandboxtest.Parallel(t, sandboxtest.Shared(sandboxtest.ControlPlane))
	env := sandboxtest.Get(t)
	c := kube(t, env)
	ctx := context.Background()
	ns := optedInNamespace(t, c, "target-gone")
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "faultline.local/demo-app:sandbox"}}}}},
	}
	if err := c.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: roll-later, namespace: %s}
spec:
  targets: {deployment: web}
  faults:
  - name: sigterm
    type: Rollout
    startAfter: 8s
    duration: 60s
    rollout:
      trigger: {restart: true}
      at: {newReady: 1}
`, ns)
	if out, code := sandboxtest.Kubectl(t, env, "apply", "-f", writeFile(t, doc)); code != 0 {
		t.Fatalf("kubectl apply (exit %d): %s", code, out)
	}
	exp := &v1alpha1.Experiment{}
	key := client.ObjectKey{Namespace: ns, Name: "roll-later"}
	t.Cleanup(func() { _ = c.Delete(context.Background(), exp) })
	sandboxtest.WaitFor(t, 10*time.Second, "the experiment to be planned on its Deployment", func() bool {
		return c.Get(ctx, key, exp) == nil && exp.Status.StartTime != nil
	})
	if err := c.Delete(ctx, dep); err != nil {
		t.Fatal(err)
	}
	faultStart := exp.Status.StartTime.Add(8 * time.Second)
	var ev *corev1.Event
	sandboxtest.WaitFor(t, time.Until(faultStart.Add(time.Minute)), "a TargetGone event and Ready=False within a minute of the fault's start", func() bool {
		if c.Get(ctx, key, exp) != nil {
			return false
		}
		ev = warningEvent(t, c, exp, v1alpha1.ReasonTargetGone)
		return ev != nil && readyFalse(exp, v1alpha1.ReasonTargetGone) != nil
	})
	t.Logf("TargetGone shown %s after the fault's start", time.Since(faultStart).Round(100*time.Millisecond))
	if !strings.Contains(ev.Message, "spec.targets.deployment") || !strings.Contains(ev.Message, "is gone") {
		t.Errorf("the event does not say what is gone: %q", ev.Message)
	}
	desc, code := runCLI(t, env, "describe", "roll-later", "-n", ns)
	for _, want := range []string{"Conditions:", "Ready", "TargetGone", "Events:", "Warning", "Deployment " + ns + "/web is gone"} {
		if code != 0 || !strings.Contains(desc, want) {
			t.Errorf("faultline describe (exit %d) lacks %q:\n%s", code, want, desc)
		}
	}
}

// A write the API server refuses (here an admission policy refusing the
// finalizer) must never leave an experiment with an empty phase and no
// word of why.
func TestAControllerWriteTheAPIServerRefusesIsShownAsAnEventAndACondition(t *testing.T) {
	sandboxtest.Parallel(t, sandboxtest.Shared(sandboxtest.ControlPlane))
	env := sandboxtest.Get(t)
	c := kube(t, env, admissionv1.AddToScheme)
	ctx := context.Background()
	ns := optedInNamespace(t, c, "frozen")
	const msg = "finalizers are frozen in this namespace (the test's policy)"
	name := "faultline-test-" + ns
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{RuleWithOperations: admissionv1.RuleWithOperations{
				Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
				Rule:       admissionv1.Rule{APIGroups: []string{v1alpha1.GroupVersion.Group}, APIVersions: []string{"*"}, Resources: []string{"experiments"}},
			}}}},
			Validations: []admissionv1.Validation{{Expression: "!has(object.metadata.finalizers) || size(object.metadata.finalizers) == 0", Message: msg}},
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: name, ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}}},
	}
	for _, o := range []client.Object{policy, binding} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), o) })
	}
	doc := fmt.Sprintf(`apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: frozen, namespace: %s}
spec:
  targets: {nodes: {names: [kwok-0]}}
  dryRun: true
  faults:
  - {name: cut, type: NetworkLoss, duration: 30s, networkLoss: {lossPercent: 100}}
`, ns)
	// The policy takes a moment to be enforced: until then the finalizer
	// may go on. Wait until a dry run of an experiment with one is refused.
	var probe v1alpha1.Experiment
	if err := yaml.UnmarshalStrict([]byte(doc), &probe); err != nil {
		t.Fatal(err)
	}
	probe.Name, probe.Finalizers = "probe", []string{v1alpha1.Finalizer}
	sandboxtest.WaitFor(t, 30*time.Second, "the policy to be enforced", func() bool {
		err := c.Create(ctx, probe.DeepCopy(), client.DryRunAll)
		return err != nil && strings.Contains(err.Error(), msg)
	})
	if out, code := sandboxtest.Kubectl(t, env, "apply", "-f", writeFile(t, doc)); code != 0 {
		t.Fatalf("kubectl apply (exit %d): %s", code, out)
	}
	created := time.Now()
	exp := &v1alpha1.Experiment{}
	key := client.ObjectKey{Namespace: ns, Name: "frozen"}
	var ev *corev1.Event
	sandboxtest.WaitFor(t, 10*time.Second, "a FinalizerNotSet event and Ready=False", func() bool {
		if c.Get(ctx, key, exp) != nil {
			return false
		}
		ev = warningEvent(t, c, exp, v1alpha1.ReasonFinalizerNotSet)
		return ev != nil && readyFalse(exp, v1alpha1.ReasonFinalizerNotSet) != nil
	})
	t.Logf("shown %.1fs after creation", time.Since(created).Seconds())
	if !strings.Contains(ev.Message, msg) || !strings.Contains(readyFalse(exp, v1alpha1.ReasonFinalizerNotSet).Message, msg) {
		t.Errorf("the event and the condition must quote the API server: %q", ev.Message)
	}
	if exp.Status.Phase != "" || len(exp.Finalizers) != 0 {
		t.Fatalf("phase %q, finalizers %v: the experiment went on without its finalizer", exp.Status.Phase, exp.Finalizers)
	}
	desc, code := runCLI(t, env, "describe", "frozen", "-n", ns)
	for _, want := range []string{"none yet", "FinalizerNotSet", msg, "Events:"} {
		if code != 0 || !strings.Contains(desc, want) {
			t.Errorf("faultline describe (exit %d) lacks %q:\n%s", code, want, desc)
		}
	}
	// Once the policy goes, the controller's retry takes the experiment up.
	if err := c.Delete(ctx, binding); err != nil {
		t.Fatal(err)
	}
	sandboxtest.WaitFor(t, 2*time.Minute, "the experiment to be taken up once nothing refuses it", func() bool {
		return c.Get(ctx, key, exp) == nil && exp.Status.Phase.IsFinal()
	})
	if r := meta.FindStatusCondition(exp.Status.Conditions, v1alpha1.ConditionReady); r == nil || r.Status != metav1.ConditionTrue {
		t.Errorf("Ready after the stall: %+v, want True", r)
	}
	_ = c.Delete(ctx, exp)
}
