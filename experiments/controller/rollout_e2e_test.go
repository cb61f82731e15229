//go:build sandbox

package controller_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"faultline.dev/faultline/deploy"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/sandbox"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

// example reads a file of deploy/examples with the rollout namespace
// renamed, so that runs do not wait for each other's namespaces to go.
func example(t *testing.T, file, ns string) string {
	t.Helper()
	b, err := deploy.Files.ReadFile("examples/" + file)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "name: rollout\n", "name: "+ns+"\n")
	s = strings.ReplaceAll(s, "namespace: rollout\n", "namespace: "+ns+"\n")
	// One ingress path per namespace: namespaces of earlier runs may still
	// be going away with their Services.
	s = strings.ReplaceAll(s, "ingress-path: /web\n", "ingress-path: /"+ns+"\n")
	return strings.ReplaceAll(s, "web.rollout.svc", "web."+ns+".svc")
}

// deployVariant applies rollout-VARIANT.yaml into ns and waits until its
// three replicas are available.
func deployVariant(t *testing.T, env *sandboxtest.Env, c client.Client, variant, ns string) {
	t.Helper()
	if err := deploy.Apply(context.Background(), env.RESTConfig, []byte(example(t, "rollout-"+variant+".yaml", ns))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	})
	sandboxtest.WaitFor(t, 2*time.Minute, "the "+variant+" Deployment to be available", func() bool {
		var d appsv1.Deployment
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "web"}, &d); err != nil {
			return false
		}
		return d.Status.AvailableReplicas == 3 && d.Status.UpdatedReplicas == 3 && d.Status.Replicas == 3
	})
}

var createdRE = regexp.MustCompile(`experiment (\S+)/(\S+) created`)

// runExperiment runs the experiment document with the CLI and returns the
// final Experiment and the CLI's exit code.
func runExperiment(t *testing.T, env *sandboxtest.Env, c client.Client, doc string) (*v1alpha1.Experiment, int, string) {
	t.Helper()
	out, code := runCLI(t, env, "run", "--timeout", "6m", "-f", writeFile(t, doc))
	m := createdRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("run did not create an experiment (exit %d):\n%s", code, out)
	}
	var exp v1alpha1.Experiment
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: m[1], Name: m[2]}, &exp); err != nil {
		t.Fatal(err)
	}
	return &exp, code, out
}

func num(exp *v1alpha1.Experiment, key string) float64 {
	f, err := strconv.ParseFloat(exp.Status.Measurements[key], 64)
	if err != nil {
		return -1
	}
	return f
}

// Each variant on a sandbox of its own, with a real node and the ingress:
// its traffic and its rollouts are what it measures, and nothing else runs
// there. The two variants run side by side.
func TestTheRolloutGateFailsTheFragileAppAndPassesTheHardenedOne(t *testing.T) {
	// The machine alone. The gate's point is a moment of the rollout (an
	// old pod still Ready when the first new one is), which the workloads'
	// minReadySeconds makes 5 s wide; but what it measures is every request
	// of 200 a second, and beside the package's other sandboxes on two
	// cores the hardened app's new pods took 18 s to be Ready and 594
	// requests timed out or overran the load generator (CI). Its two
	// variants still run side by side, each on its sandbox.
	sandboxtest.Parallel(t, sandboxtest.Alone(sandboxtest.Machine))
	cases := []struct {
		name       string
		variant    string
		viaIngress bool
		wantExit   int
	}{
		{"the fragile app fails through its ClusterIP, its failed requests counted and classified, and run exits 1", "fragile", false, 1},
		{"the fragile app fails through the ingress, which answers 502, and run exits 1", "fragile", true, 1},
		{"the hardened app passes through its ClusterIP with no failed request, and run exits 0", "hardened", false, 0},
		{"the hardened app passes through the ingress with no failed request, and run exits 0", "hardened", true, 0},
	}
	runs := sandboxtest.GateRuns(t)
	table := map[string][]gateResult{}
	var mu sync.Mutex
	t.Run("variants", func(t *testing.T) {
		for _, variant := range []string{"fragile", "hardened"} {
			t.Run(variant, func(t *testing.T) {
				t.Parallel() // the parent holds the machine
				env := sandboxtest.Own(t, "roll-"+variant[:4], func(c *sandbox.Config) {
					c.RealNodes, c.IsolatedKwokNodes, c.SharedKwokNodes, c.Ingress = 1, 0, 0, true
				})
				c := kube(t, env)
				for _, tc := range cases {
					if tc.variant != variant {
						continue
					}
					t.Run(tc.name, func(t *testing.T) {
						for i := 0; i < runs; i++ {
							res := rolloutGateRun(t, env, c, tc.variant, tc.viaIngress, tc.wantExit, i+1)
							mu.Lock()
							table[tc.name] = append(table[tc.name], res)
							mu.Unlock()
						}
					})
				}
			})
		}
	})
	// The gate's validity table, for `make gate-validity`.
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-100s %-6s %s\n", "case", "right", "exit codes; failed requests; 502s")
	for _, tc := range cases {
		right, detail := 0, ""
		for _, r := range table[tc.name] {
			if r.code == tc.wantExit {
				right++
			}
			detail += fmt.Sprintf("[%d; %.0f; %.0f] ", r.code, r.errors, r.s502)
		}
		fmt.Fprintf(&b, "%-100s %d/%-4d %s\n", tc.name, right, len(table[tc.name]), detail)
	}
	t.Log(b.String())
	// Appended: the catalog's gate writes its rows to the same table.
	if p := os.Getenv("FAULTLINE_GATE_TABLE"); p != "" {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(b.String()); err != nil {
			t.Error(err)
		}
	}
}

func TestTheSignalReachesTheContainersMainProcessOnceThroughAnAgentKill(t *testing.T) {
	sandboxtest.Parallel(t, sandboxtest.Alone(sandboxtest.Node("real-0")), sandboxtest.Shared(sandboxtest.ControlPlane))
	env := sandboxtest.Get(t)
	c := kube(t, env)
	ctx := context.Background()
	ns := "rollout-signal-" + rand.String(5)
	// The hardened app drains for 12 s after SIGTERM, and logs every signal
	// it gets: a second delivery would show.
	deployVariant(t, env, c, "hardened", ns)
	doc := fmt.Sprintf(`apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: signal-once, namespace: %s}
spec:
  targets: {deployment: web}
  faults:
  - name: sigterm-new
    type: Rollout
    duration: 45s
    rollout:
      trigger: {env: {name: ROLL, value: "1"}}
      at: {newReady: 1}
      action: {pods: New, count: 1, signal: SIGTERM}
`, ns)
	if out, code := runCLI(t, env, "run", "--wait=false", "-f", writeFile(t, doc)); code != 0 {
		t.Fatalf("run: %d\n%s", code, out)
	}
	// Kill the agent of the node as soon as it is handed the signal.
	var assigned []nodeFault
	sandboxtest.WaitFor(t, 2*time.Minute, "the signal to be assigned to a node", func() bool {
		var err error
		assigned, err = assignedFaults(ctx, c, inNamespace(ns))
		return err == nil && len(assigned) > 0
	})
	cfg := env.State.Config
	agent := sandbox.AgentComponent(assigned[0].node)
	if err := sandbox.Kill(cfg, agent, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := sandbox.Restart(cfg, agent); err != nil {
		t.Fatal(err)
	}
	var exp v1alpha1.Experiment
	sandboxtest.WaitFor(t, 3*time.Minute, "the experiment to finish", func() bool {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "signal-once"}, &exp) == nil && exp.Status.Phase.IsFinal()
	})
	if exp.Status.Phase != v1alpha1.PhasePassed || len(exp.Status.Records) != 1 {
		t.Fatalf("phase %s (%s), records %+v; want Passed with one record", exp.Status.Phase, exp.Status.Message, exp.Status.Records)
	}
	rec := exp.Status.Records[0]
	if rec.InjectedAt == nil || rec.RecoveredAt == nil || rec.Error != "" || !strings.Contains(rec.Action, "SIGTERM to the main process of container web (containerd://") {
		t.Errorf("record %+v, want the SIGTERM delivered and the fault recovered", rec)
	}
	signalledOnce(t, env, c, rec.Target)
	// Nothing is left: the assignments go with the verdict.
	sandboxtest.WaitFor(t, 30*time.Second, "the faults to be taken off their node", func() bool {
		left, err := assignedFaults(ctx, c, ofExperiment(exp.UID))
		return err == nil && len(left) == 0
	})
	_ = c.Delete(ctx, &exp)
}

// signalledOnce checks that the hardened app's container in the pod
// (NAMESPACE/NAME) got exactly one SIGTERM: it logs every signal, drains
// for 12 s, exits, and is restarted once.
func signalledOnce(t *testing.T, env *sandboxtest.Env, c client.Client, target string) {
	t.Helper()
	ctx := context.Background()
	ns, pod, _ := strings.Cut(target, "/")
	var p corev1.Pod
	sandboxtest.WaitFor(t, time.Minute, "the signalled container to restart after its drain", func() bool {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: pod}, &p) == nil && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	if n := p.Status.ContainerStatuses[0].RestartCount; n != 1 {
		t.Errorf("restart count %d, want 1", n)
	}
	cs := kubernetes.NewForConfigOrDie(env.RESTConfig)
	logs, err := cs.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: "web", Previous: true}).DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(logs), "received terminated"); n != 1 {
		t.Errorf("the main process logged %d SIGTERMs, want exactly 1:\n%s", n, logs)
	}
}

func TestARolloutOfAMissingDeploymentIsRefusedNamingTheField(t *testing.T) {
	sandboxtest.Parallel(t, sandboxtest.Shared(sandboxtest.ControlPlane))
	env := sandboxtest.Get(t)
	c := kube(t, env)
	ns := "rollout-missing-" + rand.String(5)
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{v1alpha1.LabelChaosEnabled: "enabled"}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}) })
	doc := strings.Replace(example(t, "rollout-sigterm.yaml", ns), "deployment: web", "deployment: nowhere", 1)
	exp, code, out := runExperiment(t, env, c, doc)
	if code != 2 || exp.Status.Phase != v1alpha1.PhaseError || !strings.Contains(out, `spec.targets.deployment: Deployment "nowhere" not found`) {
		t.Errorf("exit %d, phase %s, output:\n%s\nwant exit 2 naming spec.targets.deployment", code, exp.Status.Phase, out)
	}
}

func TestARolloutStartedBySomeoneElseIsWaitedForAndItsPodsDeletedThroughTheAPI(t *testing.T) {
	sandboxtest.Parallel(t, sandboxtest.Alone(sandboxtest.Node("real-0")), sandboxtest.Shared(sandboxtest.ControlPlane))
	env := sandboxtest.Get(t)
	c := kube(t, env)
	ctx := context.Background()
	ns := "rollout-wait-" + rand.String(5)
	deployVariant(t, env, c, "fragile", ns)
	doc := fmt.Sprintf(`apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: wait-delete, namespace: %s}
spec:
  targets: {deployment: web}
  faults:
  - name: delete-new
    type: Rollout
    duration: 40s
    rollout:
      wait: {timeout: 30s}
      at: {after: 2s}
      action: {pods: New, count: 1, method: Delete, gracePeriodSeconds: 0}
`, ns)
	if out, code := runCLI(t, env, "run", "--wait=false", "-f", writeFile(t, doc)); code != 0 {
		t.Fatalf("run: %d\n%s", code, out)
	}
	var exp v1alpha1.Experiment
	key := client.ObjectKey{Namespace: ns, Name: "wait-delete"}
	sandboxtest.WaitFor(t, time.Minute, "the experiment to wait for a rollout", func() bool {
		if c.Get(ctx, key, &exp) != nil {
			return false
		}
		for _, e := range exp.Status.Timeline {
			if e.Reason == "RolloutWaiting" {
				return true
			}
		}
		return false
	})
	// Someone else's deploy: a new value in the pod template.
	var d appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &d); err != nil {
		t.Fatal(err)
	}
	d.Spec.Template.Spec.Containers[0].Env = append(d.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: "RELEASE", Value: "2"})
	if err := c.Update(ctx, &d); err != nil {
		t.Fatal(err)
	}
	sandboxtest.WaitFor(t, 2*time.Minute, "the experiment to finish", func() bool {
		return c.Get(ctx, key, &exp) == nil && exp.Status.Phase.IsFinal()
	})
	if exp.Status.Phase != v1alpha1.PhasePassed || len(exp.Status.Records) != 1 || len(exp.Status.Rollouts) != 1 {
		t.Fatalf("phase %s (%s), records %+v, rollouts %+v; want Passed with one record", exp.Status.Phase, exp.Status.Message, exp.Status.Records, exp.Status.Rollouts)
	}
	ro, rec := exp.Status.Rollouts[0], exp.Status.Records[0]
	if ro.TriggeredAt != nil || ro.StartedAt == nil || ro.PointAt == nil || ro.CompletedAt == nil || ro.PointAt.Sub(ro.StartedAt.Time) < 2*time.Second {
		t.Errorf("rollout %+v: want a rollout not triggered by faultline, started, acted on 2s or more after its start, completed", ro)
	}
	if rec.InjectedAt == nil || rec.Action != "delete through the API with grace 0s" {
		t.Errorf("record %+v, want a deletion with grace 0s", rec)
	}
	var p corev1.Pod
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: strings.TrimPrefix(rec.Target, ns+"/")}, &p)
	if err == nil && p.DeletionTimestamp == nil {
		t.Errorf("pod %s is still there, not deleting", rec.Target)
	}
	_ = c.Delete(ctx, &exp)
}

// gateResult is one run of the rollout gate.
type gateResult struct {
	code                int
	errors, s502, ratio float64
	classes             string
}

// rolloutGateRun deploys the variant into a namespace of its own, runs the
// rollout experiment through the ClusterIP or the ingress, and checks the
// run.
func rolloutGateRun(t *testing.T, env *sandboxtest.Env, c client.Client, variant string, viaIngress bool, wantExit, i int) gateResult {
	t.Helper()
	if env.State.IngressURL == "" {
		t.Fatal("the sandbox runs without --ingress")
	}
	ns := fmt.Sprintf("rollout-%s-%s", variant, rand.String(5))
	deployVariant(t, env, c, variant, ns)
	doc := example(t, "rollout-sigterm.yaml", ns)
	if viaIngress {
		doc = strings.Replace(doc, "http://web."+ns+".svc/", env.State.IngressURL+"/"+ns+"/", 1)
		// The ingress routes by the Service's endpoints: wait until it
		// serves the new namespace's app.
		sandboxtest.WaitFor(t, time.Minute, "the ingress to serve the app", func() bool {
			body, err := httpGet(env.State.IngressURL + "/" + ns + "/")
			return err == nil && strings.Contains(body, "hello from web-")
		})
	}
	exp, code, out := runExperiment(t, env, c, doc)
	res := gateResult{code: code, errors: num(exp, "traffic.errors"), s502: num(exp, "traffic.status.502"), ratio: num(exp, "traffic.errorRatio")}
	for _, k := range []string{"refused", "reset", "timeout", "overload", "other", "http502", "http503", "http504", "http5xx"} {
		if v := num(exp, "traffic.errorsByClass."+k); v > 0 {
			res.classes += fmt.Sprintf("%s=%.0f ", k, v)
		}
	}
	t.Logf("run %d: exit %d, %.0f failed of %s requests (%s), 502s %.0f; %s", i, code, res.errors, exp.Status.Measurements["traffic.requests"], res.classes, res.s502, exp.Status.Message)
	if code != wantExit {
		t.Errorf("run %d: exit %d, want %d\n%s", i, code, wantExit, out)
	}
	// The rollout was seen from start to end, and the signal was delivered
	// through the agent.
	if len(exp.Status.Rollouts) != 1 || exp.Status.Rollouts[0].StartedAt == nil || exp.Status.Rollouts[0].PointAt == nil || exp.Status.Rollouts[0].CompletedAt == nil {
		t.Errorf("run %d: rollout record %+v, want started, point reached and completed", i, exp.Status.Rollouts)
	}
	// A record may be superseded when the Deployment controller deleted its
	// pod between the pick and the signal (the new pod turning Ready is what
	// lets it). That is the rollout's race, not a broken fault; the verdict
	// still stands on the traffic.
	delivered := 0
	for _, rec := range exp.Status.Records {
		switch {
		case rec.Error != "" || !strings.Contains(rec.Action, "SIGTERM to the main process"):
			t.Errorf("run %d: record %+v, want a SIGTERM without error", i, rec)
		case rec.Superseded != "":
		case rec.InjectedAt == nil:
			t.Errorf("run %d: record %+v, want a delivered or superseded SIGTERM", i, rec)
		default:
			delivered++
		}
	}
	if delivered == 0 {
		t.Logf("run %d: the rollout took every picked pod before its signal; records %+v", i, exp.Status.Records)
	}
	if num(exp, "traffic.requests") < 200*50 {
		t.Errorf("run %d: only %s requests measured", i, exp.Status.Measurements["traffic.requests"])
	}
	switch {
	case variant == "hardened" && res.errors != 0:
		t.Errorf("run %d: %.0f failed requests (%s), want none", i, res.errors, res.classes)
	case variant == "fragile" && (res.errors < 1 || res.classes == ""):
		t.Errorf("run %d: %.0f failed requests, classes %q; want failures counted and classified", i, res.errors, res.classes)
	case variant == "fragile" && viaIngress && res.s502 < 1:
		t.Errorf("run %d: no 502 through the ingress (%s)", i, res.classes)
	}
	return res
}
