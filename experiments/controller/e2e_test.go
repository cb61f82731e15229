//go:build sandbox

package controller_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/sampling"
	"faultline.dev/faultline/injectors/netloss"
	"faultline.dev/faultline/internal/nettest"
	"faultline.dev/faultline/sandbox"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// kube is a client of the sandbox that knows faultline's kinds, pods and
// Deployments, and the kinds of any extra scheme.
func kube(t testing.TB, env *sandboxtest.Env, extra ...func(*runtime.Scheme) error) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range append([]func(*runtime.Scheme) error{v1alpha1.AddToScheme, corev1.AddToScheme, appsv1.AddToScheme}, extra...) {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(env.RESTConfig, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// partition is an experiment cutting node from the API server.
func partition(name, node string, d time.Duration, objectives ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: %s, namespace: default}
spec:
  targets: {nodes: {names: [%s]}}
  faults:
  - name: partition
    type: NetworkLoss
    duration: %s
    networkLoss: {lossPercent: 100, towardAPIServer: true}
  objectives:
`, name, node, d)
	for i, o := range objectives {
		fmt.Fprintf(&b, "  - {name: objective-%d, expr: %q}\n", i, o)
	}
	return b.String()
}

// runCLI runs `faultline ARGS...` and returns its output and exit code.
func runCLI(t *testing.T, env *sandboxtest.Env, args ...string) (string, int) {
	t.Helper()
	return sandboxtest.CLI(t, env, args...)
}

// kubectlRun puts the experiment of file into the cluster as a user does,
// with `kubectl VERB -f FILE` (create, apply, apply --server-side), then
// follows it with `faultline wait`, which exits as `faultline run` does.
// It returns the experiment's key, and wait's output and exit code.
func kubectlRun(t *testing.T, env *sandboxtest.Env, verb, file string, waitArgs ...string) (client.ObjectKey, string, int) {
	t.Helper()
	args := append(strings.Fields(verb), "-f", file, "-o", "jsonpath={.metadata.namespace} {.metadata.name}")
	out, code := sandboxtest.Kubectl(t, env, args...)
	if code != 0 {
		t.Fatalf("kubectl %s -f %s (exit %d): %s", verb, file, code, out)
	}
	ns, name, ok := strings.Cut(strings.TrimSpace(out), " ")
	if !ok || name == "" {
		t.Fatalf("kubectl %s did not name the experiment: %q", verb, out)
	}
	out, code = runCLI(t, env, append([]string{"wait", name, "-n", ns}, waitArgs...)...)
	return client.ObjectKey{Namespace: ns, Name: name}, out, code
}

func writeFile(t *testing.T, content string) string {
	p := filepath.Join(t.TempDir(), "exp.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func getExp(t *testing.T, c client.Client, name string) *v1alpha1.Experiment {
	t.Helper()
	var exp v1alpha1.Experiment
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: name}, &exp); err != nil {
		t.Fatal(err)
	}
	return &exp
}

func measurement(t *testing.T, exp *v1alpha1.Experiment, key string) float64 {
	t.Helper()
	v, ok := exp.Status.Measurements[key]
	if !ok {
		t.Fatalf("no measurement %s in %v", key, exp.Status.Measurements)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("measurement %s = %q: %v", key, v, err)
	}
	return f
}

func cleanupExp(t *testing.T, c client.Client, name string) {
	t.Cleanup(func() {
		_ = c.Delete(context.Background(), &v1alpha1.Experiment{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}})
	})
}

// assertNoFaultTables checks that no faultline table is left anywhere: in
// the host's namespace and in every namespace of the sandbox.
func assertNoFaultTables(t *testing.T, env *sandboxtest.Env) {
	t.Helper()
	paths := []string{""}
	for _, n := range env.State.Nodes {
		if n.Netns != "" {
			paths = append(paths, "/run/netns/"+n.Netns)
		}
	}
	for _, p := range paths {
		tables, err := netloss.Tables(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(tables) > 0 {
			t.Errorf("left behind in %q: nftables tables %v", p, tables)
		}
	}
}

// The Kubernetes node-loss story, with fast timings: grace 20 s, then
// NotReady and the unreachable taints, evictions 30 s later, the node back
// after the 90 s deadline, and the workload recovered.
func TestANodeCutFromTheAPIServerForNinetySeconds(t *testing.T) {
	sandboxtest.Parallel(t, sandboxtest.Alone(sandboxtest.Node("isolated-0")), sandboxtest.Shared(sandboxtest.ControlPlane))
	env := sandboxtest.Get(t)
	c := kube(t, env)
	ctx := context.Background()
	const node = "isolated-0"
	if env.State.Config.Timings != sandbox.TimingsFast {
		t.Fatalf("needs fast timings, the sandbox has %s", env.State.Config.Timings)
	}
	// A test before may have cut the node too (the Schedule tests do): its
	// taints go a moment after its claim, and would count here.
	sandboxtest.WaitFor(t, 2*time.Minute, node+" Ready with no unreachable taint", func() bool {
		var n corev1.Node
		if c.Get(ctx, client.ObjectKey{Name: node}, &n) != nil {
			return false
		}
		for _, taint := range n.Spec.Taints {
			if taint.Key == corev1.TaintNodeUnreachable {
				return false
			}
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue
			}
		}
		return false
	})
	// A Deployment whose pods live on the node.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "partition-e2e"}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "victim"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "victim", Namespace: ns.Name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeName:   node,
					Containers: []corev1.Container{{Name: "app", Image: "faultline.local/demo-app:sandbox"}},
				},
			},
		},
	}
	if err := c.Create(ctx, dep); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), ns) })
	sandboxtest.WaitFor(t, time.Minute, "the victim pods to run", func() bool {
		var d appsv1.Deployment
		return c.Get(ctx, client.ObjectKeyFromObject(dep), &d) == nil && d.Status.AvailableReplicas == 3
	})

	// The shipped example, as a user creates it: kubectl, then faultline
	// wait for the gate.
	const name = "node-partition"
	cleanupExp(t, c, name)
	junit := filepath.Join(t.TempDir(), "report.xml")
	_, out, code := kubectlRun(t, env, "create", filepath.Join(sandboxtest.RepoRoot(), "deploy", "examples", "node-partition.yaml"), "--junit", junit)
	t.Logf("kubectl create, then faultline wait:\n%s", out)
	if code != 0 {
		t.Fatalf("faultline wait exited %d, want 0 (Passed)", code)
	}
	exp := getExp(t, c, name)
	start := exp.Status.StartTime.Time
	deadline := start.Add(90 * time.Second)

	// NotReady at the grace period (20 s), within 5 s.
	toNotReady := measurement(t, exp, "nodes.secondsToNotReady")
	if toNotReady < 15 || toNotReady > 25 {
		t.Errorf("NotReady %.1fs after the cut, want 20s ± 5s (the grace period)", toNotReady)
	}
	if exp.Status.Measurements["nodes.unreachableTainted"] != "true" {
		t.Errorf("the unreachable NoExecute taint was not seen: %v", exp.Status.Measurements)
	}
	// Evictions after the 30 s toleration, by the taint manager.
	if len(exp.Status.Evictions) < 3 {
		t.Fatalf("evictions %v, want the 3 victim pods", exp.Status.Evictions)
	}
	// The first three are the original pods, 30 s after NotReady; their
	// replacements, bound to the same node, follow 30 s after they appear.
	notReadyAt := exp.Status.NodeSpans[0].From.Time
	for i, e := range exp.Status.Evictions {
		if e.Reason != "TaintManagerEviction" {
			t.Errorf("eviction %s for %s, want TaintManagerEviction", e.Pod, e.Reason)
		}
		d := e.Time.Sub(notReadyAt)
		if i < 3 && (d < 25*time.Second || d > 45*time.Second) || d < 25*time.Second {
			t.Errorf("eviction %d of %s %.0fs after NotReady, want the first ones about the 30s toleration after", i, e.Pod, d.Seconds())
		}
	}
	// Ready again after the deadline, by the agent's own clock.
	span := exp.Status.NodeSpans[0]
	if span.To == nil || span.To.Time.Before(deadline) || span.To.After(deadline.Add(15*time.Second)) {
		t.Errorf("NotReady span %v, want it to end within 15s after the deadline %s", span, deadline.Format(time.TimeOnly))
	}
	for _, r := range exp.Status.Records {
		if r.RecoveredAt == nil || r.RecoveredAt.Time.Before(deadline.Add(-time.Second)) || r.RecoveredAt.After(deadline.Add(2*time.Second)) {
			t.Errorf("record %+v: want recovery at the deadline %s (the agent was cut off too)", r, deadline.Format(time.TimeOnly))
		}
	}
	// The agent was cut off too: its report of the injection could only
	// reach the API server after the partition ended.
	for _, e := range exp.Status.Timeline {
		if e.Reason == "Injected" && e.Time.Time.Before(deadline.Add(-time.Second)) {
			t.Errorf("the injection was reported at %s, before the deadline: the agent was not cut off", e.Time.Format(time.TimeOnly))
		}
	}
	// Both unreachable taints came and went, with their times.
	taints := map[string]int{}
	for _, c := range exp.Status.Taints {
		if c.Node == node && strings.HasPrefix(c.Taint, corev1.TaintNodeUnreachable) {
			taints[fmt.Sprint(c.Added)]++
		}
	}
	if taints["true"] != 2 || taints["false"] != 2 {
		t.Errorf("unreachable taint changes %v, want both added and both removed: %+v", taints, exp.Status.Taints)
	}
	if r := measurement(t, exp, "recovery.seconds"); r <= 0 {
		t.Errorf("recovery.seconds = %v, want it measured", r)
	}
	for _, want := range []string{"NotReady", "Passed", "recovery.seconds="} {
		if !strings.Contains(out, want) {
			t.Errorf("faultline run's output lacks %q", want)
		}
	}
	// describe tells the same story.
	desc, code := runCLI(t, env, "describe", name, "-n", "default")
	for _, want := range []string{"Timeline:", "NotReady spans:", "node.kubernetes.io/unreachable:NoExecute", "TaintManagerEviction", "nodes.secondsToNotReady"} {
		if code != 0 || !strings.Contains(desc, want) {
			t.Errorf("faultline describe (exit %d) lacks %q:\n%s", code, want, desc)
		}
	}
	// The controller's metrics counted it.
	metrics, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", env.State.Components[sandbox.ControllerComponent].Ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`faultline_experiments{phase="Passed"}`, `faultline_experiment_verdicts_total{verdict="Passed"}`, "faultline_injection_latency_seconds_count", "faultline_recovery_latency_seconds_count", "faultline_active_faults"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("controller metrics lack %s", want)
		}
	}
	// JUnit: one testcase per objective.
	b, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var suites struct {
		Suites []struct {
			Tests int `xml:"tests,attr"`
			Cases []struct {
				Name string `xml:"name,attr"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &suites); err != nil || len(suites.Suites) != 1 || len(suites.Suites[0].Cases) != 2 {
		t.Errorf("JUnit report %s: %v, want 1 suite of 2 testcases (the example's objectives)", b, err)
	}
	assertNoFaultTables(t, env)

	// The same experiment with an objective it cannot meet fails the gate.
	const failing = "partition-fails"
	cleanupExp(t, c, failing)
	out, code = runCLI(t, env, "run", "-f", writeFile(t, partition(failing, node, 30*time.Second, "nodes.maxNotReadySeconds < 1")))
	if code != 1 {
		t.Errorf("faultline run exited %d for a breached objective, want 1:\n%s", code, out)
	}
	if !strings.Contains(out, "breached: nodes.maxNotReadySeconds < 1 with nodes.maxNotReadySeconds = ") {
		t.Errorf("the verdict should name the measurement and the bound:\n%s", out)
	}
	assertNoFaultTables(t, env)
}

// It kills the controller: on a sandbox of its own.
func TestCrashesAndDeletionsLeaveNoFaultBehind(t *testing.T) {
	sandboxtest.Parallel(t)
	env := sandboxtest.Own(t, "crash", nil)
	c := kube(t, env)
	ctx := context.Background()
	const node = "isolated-1"
	cfg := env.State.Config
	start := func(t *testing.T, name string, d time.Duration) *v1alpha1.Experiment {
		t.Helper()
		cleanupExp(t, c, name)
		if out, code := runCLI(t, env, "run", "--wait=false", "-f", writeFile(t, partition(name, node, d, "nodes.maxNotReadySeconds < 600"))); code != 0 {
			t.Fatalf("run: %d\n%s", code, out)
		}
		var exp *v1alpha1.Experiment
		sandboxtest.WaitFor(t, 30*time.Second, "the fault to be in place", func() bool {
			exp = getExp(t, c, name)
			tables, _ := netloss.Tables("/run/netns/" + env.Plan.NetnsName(node))
			return exp.Status.Phase == v1alpha1.PhaseRunning && len(tables) == 1
		})
		return exp
	}
	tablesGone := func() bool {
		tables, err := netloss.Tables("/run/netns/" + env.Plan.NetnsName(node))
		return err == nil && len(tables) == 0
	}
	finished := func(name string) func() bool {
		return func() bool { return getExp(t, c, name).Status.Phase.IsFinal() }
	}

	t.Run("an agent killed with -9 mid-fault is restarted and recovers on time", func(t *testing.T) {
		exp := start(t, "crash-agent", 25*time.Second)
		if err := sandbox.Kill(cfg, sandbox.AgentComponent(node), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		if _, err := sandbox.Restart(cfg, sandbox.AgentComponent(node)); err != nil {
			t.Fatal(err)
		}
		deadline := exp.Status.StartTime.Add(25 * time.Second)
		sandboxtest.WaitFor(t, time.Until(deadline)+3*time.Second, "the restarted agent to recover the fault at its deadline", tablesGone)
		if late := time.Since(deadline); late < -time.Second {
			t.Errorf("recovered %s before the deadline", -late)
		}
		sandboxtest.WaitFor(t, 2*time.Minute, "the experiment to finish", finished("crash-agent"))
	})

	t.Run("an agent killed with -9 and never restarted: the kernel ends its 60 s loss at the deadline, measured by probes", func(t *testing.T) {
		start(t, "agent-gone", 60*time.Second)
		var fa v1alpha1.FaultAssignment
		if err := c.Get(ctx, client.ObjectKey{Namespace: v1alpha1.DefaultAgentNamespace, Name: node}, &fa); err != nil || len(fa.Spec.Faults) != 1 {
			t.Fatalf("%s's FaultAssignment: %v, %+v", node, err, fa.Spec.Faults)
		}
		deadline := fa.Spec.Faults[0].Deadline.Time
		if err := sandbox.Kill(cfg, sandbox.AgentComponent(node), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// No agent on the node now, as when its DaemonSet is deleted. The
		// probe: a TCP connection from the node's namespace to the API
		// server, which the loss cuts, every 50 ms.
		u, err := url.Parse(env.State.Server)
		if err != nil {
			t.Fatal(err)
		}
		dial := func() (ok bool) {
			nettest.In(t, env.Plan.NetnsName(node), func() {
				conn, err := net.DialTimeout("tcp", u.Host, 40*time.Millisecond)
				if ok = err == nil; ok {
					conn.Close()
				}
			})
			return ok
		}
		var back time.Time
		for until := deadline.Add(10 * time.Second); back.IsZero(); time.Sleep(50 * time.Millisecond) {
			if dial() {
				back = time.Now()
			} else if time.Now().After(until) {
				t.Fatalf("still cut off 10 s after the deadline %s, with no agent", deadline.Format(time.RFC3339Nano))
			}
		}
		tables, _ := netloss.Tables("/run/netns/" + env.Plan.NetnsName(node))
		off := back.Sub(deadline)
		t.Logf("no agent on %s: the API server answered again %+v after the deadline (probes every 50 ms); fault tables then: %v", node, off.Round(time.Millisecond), tables)
		if off < -time.Second || off > time.Second {
			t.Errorf("the loss ended %s after its deadline, want within ±1 s", off)
		}
		if len(tables) != 1 {
			t.Errorf("fault tables when the loss ended: %v, want its own still there (the kernel ended it, not a process)", tables)
		}
		// An agent that comes back deletes the table and reports.
		if _, err := sandbox.Restart(cfg, sandbox.AgentComponent(node)); err != nil {
			t.Fatal(err)
		}
		sandboxtest.WaitFor(t, 30*time.Second, "the returning agent to delete the table", tablesGone)
		sandboxtest.WaitFor(t, 2*time.Minute, "the experiment to finish", finished("agent-gone"))
	})

	t.Run("a controller killed with -9 mid-fault: the agent recovers and the new controller finishes", func(t *testing.T) {
		// Long enough past the 20 s grace that the node is NotReady for a
		// while even on a busy machine. The controller dies once it has
		// seen the NotReady (mid-fault, as measured): that span must
		// survive the crash, and the next controller close it. Killed any
		// earlier, whether anyone saw the node NotReady would depend on
		// how fast the next controller starts.
		exp := start(t, "crash-controller", 35*time.Second)
		sandboxtest.WaitFor(t, 30*time.Second, "the controller to see the node NotReady", func() bool {
			return len(getExp(t, c, "crash-controller").Status.NodeSpans) == 1
		})
		if err := sandbox.Kill(cfg, sandbox.ControllerComponent, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deadline := exp.Status.StartTime.Add(35 * time.Second)
		sandboxtest.WaitFor(t, time.Until(deadline)+3*time.Second, "the agent to recover at the deadline with no controller", tablesGone)
		if _, err := sandbox.Restart(cfg, sandbox.ControllerComponent); err != nil {
			t.Fatal(err)
		}
		sandboxtest.WaitFor(t, 2*time.Minute, "the restarted controller to finish the experiment", finished("crash-controller"))
		got := getExp(t, c, "crash-controller")
		if got.Status.Phase != v1alpha1.PhasePassed {
			t.Errorf("phase %s (%s), want Passed", got.Status.Phase, got.Status.Message)
		}
		// What the first controller measured survived the crash.
		if len(got.Status.NodeSpans) != 1 || got.Status.NodeSpans[0].To == nil || measurement(t, got, "nodes.maxNotReadySeconds") < 1 {
			t.Errorf("after the restart: spans %+v, measurements %v; want the NotReady span kept and closed", got.Status.NodeSpans, got.Status.Measurements)
		}
		for _, rec := range got.Status.Records {
			if rec.InjectedAt == nil || rec.RecoveredAt == nil {
				t.Errorf("record %+v lacks its injection or recovery", rec)
			}
		}
	})

	t.Run("deleting the experiment mid-fault recovers it and releases the finalizer", func(t *testing.T) {
		// A loss that leaves the agent connected, so that it hears the
		// deletion long before the 10-minute deadline.
		super := env.Plan.Super.Addr().As4()
		doc := strings.Replace(partition("deleted", node, 10*time.Minute, "nodes.maxNotReadySeconds < 600"),
			"towardAPIServer: true", fmt.Sprintf("peers: [%d.%d.99.0/24]", super[0], super[1]), 1)
		cleanupExp(t, c, "deleted")
		if out, code := runCLI(t, env, "run", "--wait=false", "-f", writeFile(t, doc)); code != 0 {
			t.Fatalf("run: %d\n%s", code, out)
		}
		var exp *v1alpha1.Experiment
		sandboxtest.WaitFor(t, 30*time.Second, "the fault to be in place", func() bool {
			exp = getExp(t, c, "deleted")
			tables, _ := netloss.Tables("/run/netns/" + env.Plan.NetnsName(node))
			return exp.Status.Phase == v1alpha1.PhaseRunning && len(tables) == 1
		})
		if !controllerutil.ContainsFinalizer(exp, v1alpha1.Finalizer) {
			t.Fatalf("finalizers %v, want %s before any injection", exp.Finalizers, v1alpha1.Finalizer)
		}
		if err := c.Delete(ctx, exp); err != nil {
			t.Fatal(err)
		}
		sandboxtest.WaitFor(t, 30*time.Second, "the fault to be recovered", tablesGone)
		sandboxtest.WaitFor(t, 30*time.Second, "the experiment to be gone (finalizer released)", func() bool {
			var e v1alpha1.Experiment
			return apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(exp), &e))
		})
		if left, err := assignedFaults(ctx, c, ofExperiment(exp.UID)); err != nil || len(left) > 0 {
			t.Errorf("faults left assigned: %v %v", left, err)
		}
	})
	assertNoFaultTables(t, env)
}

// seeded is what the choice picks of the targets, in order, as the
// controller lists them: their names, sorted.
func seeded(t *testing.T, c sampling.Choice, targets ...string) string {
	t.Helper()
	idx, _, err := c.Indices(len(targets))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, i := range idx {
		out = append(out, targets[i])
	}
	return strings.Join(out, ", ")
}

func TestSafetyRulesRefuseOrCapTargets(t *testing.T) {
	sandboxtest.Parallel(t, sandboxtest.Shared(sandboxtest.ControlPlane))
	env := sandboxtest.Get(t)
	c := kube(t, env)
	ctx := context.Background()
	for _, ns := range []struct {
		name  string
		optIn bool
	}{{"safety-closed", false}, {"safety-open", true}} {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.name}}
		if ns.optIn {
			n.Labels = map[string]string{v1alpha1.LabelChaosEnabled: "enabled"}
		}
		if err := c.Create(ctx, n); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), n) })
		for i := range 4 {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: ns.name, Labels: map[string]string{"app": "x"}},
				Spec: corev1.PodSpec{NodeName: "kwok-0", Containers: []corev1.Container{{Name: "c", Image: "x"}}}}
			if err := c.Create(ctx, p); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
		}
	}
	podsExp := func(name, ns, extra string) string {
		return fmt.Sprintf(`apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: %s, namespace: default}
spec:
  targets: {pods: {namespaces: [%s], labelSelectors: {app: x}}}
  faults:
  - {name: loss, type: NetworkLoss, duration: 30s, networkLoss: {lossPercent: 10}}
%s`, name, ns, extra)
	}
	tests := map[string]struct {
		doc      string
		wantCode int
		want     []string
	}{
		"a namespace without the opt-in label is refused, saying how to opt in": {
			doc: podsExp("closed", "safety-closed", ""), wantCode: 2,
			want: []string{`namespace "safety-closed" has not opted in`, "kubectl label namespace safety-closed faultline.dev/chaos=enabled"},
		},
		"kube-system is refused unless explicitly allowed": {
			doc: podsExp("system", "kube-system", ""), wantCode: 2, want: []string{`"kube-system" is a system namespace`, "allowSystemNamespaces"},
		},
		"the blast radius caps the targets, chosen at random (dry run)": {
			doc: podsExp("capped", "safety-open", "  dryRun: true\n  safety: {maxTargets: 2}\n"), wantCode: 0,
			want: []string{"blast radius: 2 of 4 matching targets kept", "2 target(s) chosen at random (mode all, seed ", "dry run: would inject 1 fault(s) into safety-open/p"},
		},
		"a mode and a seed choose the same targets as the seed's replay (dry run)": {
			doc: strings.Replace(podsExp("seeded", "safety-open", "  dryRun: true\n"), "labelSelectors: {app: x}}", "labelSelectors: {app: x}}, mode: fixed, value: 2, seed: 11", 1), wantCode: 0,
			want: []string{"2 target(s) chosen at random (mode fixed, seed 11)", "dry run: would inject 1 fault(s) into " + seeded(t, sampling.Choice{Mode: v1alpha1.TargetModeFixed, Value: 2, Seed: 11}, "safety-open/p0", "safety-open/p1", "safety-open/p2", "safety-open/p3")},
		},
		"a percentage bound caps them too": {
			doc: podsExp("pct", "safety-open", "  dryRun: true\n  safety: {maxTargetPercent: 25}\n"), wantCode: 0, want: []string{"1 of 4 matching targets kept"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			objs := strings.SplitN(strings.SplitN(tc.doc, "name: ", 2)[1], ",", 2)[0]
			cleanupExp(t, c, objs)
			out, code := runCLI(t, env, "run", "-f", writeFile(t, tc.doc), "--timeout", "1m")
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d:\n%s", code, tc.wantCode, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// It turns the kill switch on: on a sandbox of its own.
func TestAbortsRecoverAtOnceAndExitThree(t *testing.T) {
	sandboxtest.Parallel(t)
	env := sandboxtest.Own(t, "abort", nil)
	c := kube(t, env)
	ctx := context.Background()
	const node = "isolated-1"
	super := env.Plan.Super.Addr().As4()
	// A loss toward an unused range: the agent stays connected and hears
	// the abort at once.
	benign := func(name string, objectives ...string) string {
		return strings.Replace(partition(name, node, 5*time.Minute, objectives...),
			"towardAPIServer: true", fmt.Sprintf("peers: [%d.%d.99.0/24]", super[0], super[1]), 1)
	}
	tablesGone := func() bool {
		tables, err := netloss.Tables("/run/netns/" + env.Plan.NetnsName(node))
		return err == nil && len(tables) == 0
	}
	runAsync := func(t *testing.T, name, doc string) chan int {
		cleanupExp(t, c, name)
		done := make(chan int, 1)
		path := writeFile(t, doc)
		go func() { _, code := runCLI(t, env, "run", "-f", path, "--timeout", "3m"); done <- code }()
		sandboxtest.WaitFor(t, 30*time.Second, name+" to run", func() bool {
			var e v1alpha1.Experiment
			return c.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, &e) == nil && e.Status.Phase == v1alpha1.PhaseRunning
		})
		return done
	}
	exitCode := func(t *testing.T, done chan int) int {
		select {
		case code := <-done:
			return code
		case <-time.After(time.Minute):
			t.Fatal("faultline run did not end after the abort")
			return -1
		}
	}

	t.Run("faultline abort", func(t *testing.T) {
		done := runAsync(t, "abort-cli", benign("abort-cli", "nodes.notReadySpans == 0"))
		if out, code := runCLI(t, env, "abort", "abort-cli", "-n", "default"); code != 0 {
			t.Fatalf("abort: %d %s", code, out)
		}
		if code := exitCode(t, done); code != 3 {
			t.Errorf("faultline run exited %d after an abort, want 3", code)
		}
		sandboxtest.WaitFor(t, 10*time.Second, "the fault to be recovered", tablesGone)
	})

	t.Run("a live abort objective that is breached", func(t *testing.T) {
		// The abort objective is breached from the first evaluation.
		doc := benign("abort-slo", "nodes.notReadySpans == 0")
		doc += "  - {name: never, expr: \"nodes.notReadySpans > 100\", abort: true}\n"
		cleanupExp(t, c, "abort-slo")
		out, code := runCLI(t, env, "run", "-f", writeFile(t, doc), "--timeout", "2m")
		if code != 3 || !strings.Contains(out, `abort objective \"never\" breached`) && !strings.Contains(out, `abort objective "never" breached`) {
			t.Errorf("exit %d, want 3 naming the breached abort objective:\n%s", code, out)
		}
		sandboxtest.WaitFor(t, 10*time.Second, "the fault to be recovered", tablesGone)
	})

	t.Run("the kill switch stops running experiments and refuses new ones", func(t *testing.T) {
		done := runAsync(t, "kill-running", benign("kill-running", "nodes.notReadySpans == 0"))
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: sandbox.FaultlineNamespace, Name: "faultline-kill-switch"}, Data: map[string]string{"enabled": "true"}}
		if err := c.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), cm) })
		if code := exitCode(t, done); code != 3 {
			t.Errorf("a running experiment exited %d under the kill switch, want 3 (aborted)", code)
		}
		sandboxtest.WaitFor(t, 10*time.Second, "the fault to be recovered", tablesGone)
		cleanupExp(t, c, "kill-new")
		out, code := runCLI(t, env, "run", "-f", writeFile(t, benign("kill-new", "nodes.notReadySpans == 0")), "--timeout", "1m")
		if code != 2 || !strings.Contains(out, "the kill switch is on") {
			t.Errorf("a new experiment under the kill switch: exit %d, want 2 naming the kill switch:\n%s", code, out)
		}
	})
}

func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// nodeFault is a fault assigned to a node.
type nodeFault struct {
	node string
	v1alpha1.AssignedFault
}

// assignedFaults lists the faults that match across every node's
// FaultAssignment.
func assignedFaults(ctx context.Context, c client.Reader, match func(v1alpha1.AssignedFault) bool) ([]nodeFault, error) {
	var list v1alpha1.FaultAssignmentList
	if err := c.List(ctx, &list); err != nil {
		return nil, err
	}
	var out []nodeFault
	for _, fa := range list.Items {
		for _, f := range fa.Spec.Faults {
			if match(f) {
				out = append(out, nodeFault{node: fa.Spec.NodeName, AssignedFault: f})
			}
		}
	}
	return out, nil
}

func ofExperiment(uid types.UID) func(v1alpha1.AssignedFault) bool {
	return func(f v1alpha1.AssignedFault) bool { return f.Experiment.UID == uid }
}

func inNamespace(ns string) func(v1alpha1.AssignedFault) bool {
	return func(f v1alpha1.AssignedFault) bool { return f.Experiment.Namespace == ns }
}
