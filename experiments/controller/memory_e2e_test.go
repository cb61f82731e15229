//go:build sandbox

package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"faultline.dev/faultline/deploy"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/injectors/procfs"
	"faultline.dev/faultline/sandbox"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

// renamedExample reads a file of deploy/examples with namespace from
// renamed to, so that runs do not wait for each other's namespaces to go.
func renamedExample(t *testing.T, file, from, to string) string {
	t.Helper()
	b, err := deploy.Files.ReadFile("examples/" + file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, pat := range []string{"name: %s\n", "namespace: %s\n", "namespaces: [%s]", `"%s"`} {
		s = strings.ReplaceAll(s, fmt.Sprintf(pat, from), fmt.Sprintf(pat, to))
	}
	return s
}

// applyWorkload applies an example's workloads into ns and waits until
// every Deployment there is available.
func applyWorkload(t *testing.T, env *sandboxtest.Env, c client.Client, doc, ns string) {
	t.Helper()
	if err := deploy.Apply(context.Background(), env.RESTConfig, []byte(doc)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	})
	sandboxtest.WaitFor(t, 2*time.Minute, "the Deployments of "+ns+" to be available", func() bool {
		var list appsv1.DeploymentList
		if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil || len(list.Items) == 0 {
			return false
		}
		for _, d := range list.Items {
			if d.Status.AvailableReplicas != *d.Spec.Replicas || d.Status.UpdatedReplicas != *d.Spec.Replicas {
				return false
			}
		}
		return true
	})
}

// stressorState is what the memory fault keeps of its stressor beside the
// agent's ledger.
type stressorState struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
	Cgroup    string `json:"cgroup"`
}

func readStressor(env *sandboxtest.Env, node, id string) (stressorState, bool) {
	var st stressorState
	b, err := os.ReadFile(filepath.Join(env.State.Config.Dir(), "agents", node, "memstress-"+id, "state.json"))
	if err != nil || json.Unmarshal(b, &st) != nil {
		return st, false
	}
	return st, st.PID > 0
}

func processAlive(pid int, start uint64) bool {
	st, err := procfs.ReadStat("/proc", pid)
	return err == nil && st.Start == start && st.State != 'Z'
}

// assertNoStressorsLeft checks that no memory fault left a stressor
// process, a cgroup or a state directory on any node of the sandbox.
func assertNoStressorsLeft(t *testing.T, env *sandboxtest.Env) {
	t.Helper()
	for _, n := range env.State.Nodes {
		dirs, _ := filepath.Glob(filepath.Join(env.State.Config.Dir(), "agents", n.Name, "memstress-*"))
		if len(dirs) > 0 {
			t.Errorf("state of memory faults left on %s: %v", n.Name, dirs)
		}
	}
	// This sandbox's nodes' cgroup roots, named after the sandbox and the
	// node: a glob on the sandbox's name alone would take in the roots of
	// sandboxes named after it (test-cat-mem, whose memory faults run
	// beside these tests).
	var roots []string
	for _, n := range env.State.Nodes {
		roots = append(roots, "/sys/fs/cgroup/memory/faultline-"+env.State.Config.Name+"-"+n.Name)
	}
	var cgroups []string
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if strings.HasPrefix(d.Name(), "faultline-memstress-") {
				cgroups = append(cgroups, p)
				return filepath.SkipDir
			}
			return nil
		})
	}
	if len(cgroups) > 0 {
		t.Errorf("cgroups of memory faults left: %v", cgroups)
	}
	// This sandbox's stressors: their progress file is in its directory.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), "stress-memory\x00") && strings.Contains(string(b), env.State.Config.Dir()+"/") {
			t.Errorf("a stressor is still running: %s %q", p, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
}

func TestAContainerPushedPastItsLimitIsOOMKilledAndTheVerdictFollowsOOMKills(t *testing.T) {
	sandboxtest.Parallel(t, sandboxtest.Alone(sandboxtest.Node("real-0")), sandboxtest.Shared(sandboxtest.ControlPlane))
	env := sandboxtest.Get(t)
	c := kube(t, env)
	ctx := context.Background()
	ns := "oom-" + rand.String(5)
	applyWorkload(t, env, c, renamedExample(t, "memory-oom-app.yaml", "oom", ns), ns)
	key, out, code := kubectlRun(t, env, "create", writeFile(t, renamedExample(t, "memory-oom.yaml", "oom", ns)), "--timeout", "6m")
	t.Logf("kubectl create, then faultline wait, exited %d:\n%s", code, out)
	exp := &v1alpha1.Experiment{}
	if err := c.Get(ctx, key, exp); err != nil {
		t.Fatal(err)
	}
	t.Logf("measurements: %v", exp.Status.Measurements)
	if code != 1 || exp.Status.Verdict != v1alpha1.VerdictFailed {
		t.Errorf("exit %d, verdict %s (%s); want 1 and Failed: the objective asks for no OOM kill", code, exp.Status.Verdict, exp.Status.Message)
	}
	if k := num(exp, "oom.kills"); k < 1 {
		t.Errorf("oom.kills = %v, want at least 1", k)
	}
	if r := num(exp, "oom.restarts"); r < 1 {
		t.Errorf("oom.restarts = %v, want the OOM-killed container restarted", r)
	}
	if len(exp.Status.Records) != 1 || !strings.Contains(exp.Status.Records[0].Effect, "OOM kill") {
		t.Errorf("records %+v, want one whose effect tells the OOM kill", exp.Status.Records)
	}
	// The kubelet's own account: the container was OOM-killed, and restarted.
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	killed := false
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			if term := cs.LastTerminationState.Terminated; term != nil && term.Reason == "OOMKilled" && cs.RestartCount >= 1 {
				killed = true
			}
		}
	}
	if !killed {
		t.Errorf("no container of %s was OOM-killed and restarted: %+v", ns, pods.Items)
	}
	assertNoStressorsLeft(t, env)
	_ = c.Delete(ctx, exp)
}

func TestAnAgentKilledMidStressLeavesNoStressorRunning(t *testing.T) {
	sandboxtest.Parallel(t, sandboxtest.Alone(sandboxtest.Node("real-0")), sandboxtest.Shared(sandboxtest.ControlPlane))
	env := sandboxtest.Get(t)
	c := kube(t, env)
	ctx := context.Background()
	ns := "oom-kill-" + rand.String(5)
	applyWorkload(t, env, c, renamedExample(t, "memory-oom-app.yaml", "oom", ns), ns)
	doc := fmt.Sprintf(`apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: squeeze, namespace: %s}
spec:
  targets: {pods: {namespaces: [%s], labelSelectors: {app: web}}}
  faults:
  - name: squeeze
    type: MemoryPressure
    duration: 40s
    memoryPressure: {size: 64Mi, rampPerSecond: 4Mi}
  objectives:
  - {name: no OOM kill below the limit, expr: "oom.kills == 0"}
`, ns, ns)
	if out, code := runCLI(t, env, "run", "--wait=false", "-f", writeFile(t, doc)); code != 0 {
		t.Fatalf("run: %d\n%s", code, out)
	}
	var assigned []nodeFault
	sandboxtest.WaitFor(t, 2*time.Minute, "the memory fault to be assigned", func() bool {
		var err error
		assigned, err = assignedFaults(ctx, c, inNamespace(ns))
		return err == nil && len(assigned) == 1
	})
	node, id := assigned[0].node, assigned[0].ID
	var first stressorState
	sandboxtest.WaitFor(t, time.Minute, "the stressor to start", func() bool {
		var ok bool
		first, ok = readStressor(env, node, id)
		return ok && processAlive(first.PID, first.StartTime)
	})
	// Mid-ramp: 64Mi at 4Mi/s takes 16 s.
	time.Sleep(3 * time.Second)
	agent := sandbox.AgentComponent(node)
	if err := sandbox.Kill(env.State.Config, agent, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The stressor dies with the agent that started it (its parent-death
	// signal), before any agent is back.
	sandboxtest.WaitFor(t, 10*time.Second, "the stressor to die with its agent", func() bool {
		return !processAlive(first.PID, first.StartTime)
	})
	if _, err := sandbox.Restart(env.State.Config, agent); err != nil {
		t.Fatal(err)
	}
	// The restarted agent finds the fault in its ledger and its stressor
	// gone, and puts a new one in place until the deadline.
	sandboxtest.WaitFor(t, time.Minute, "a new stressor from the restarted agent", func() bool {
		st, ok := readStressor(env, node, id)
		return ok && st.PID != first.PID && processAlive(st.PID, st.StartTime)
	})
	var exp v1alpha1.Experiment
	sandboxtest.WaitFor(t, 3*time.Minute, "the experiment to finish", func() bool {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "squeeze"}, &exp) == nil && exp.Status.Phase.IsFinal()
	})
	t.Logf("records %+v, measurements %v", exp.Status.Records, exp.Status.Measurements)
	if exp.Status.Verdict != v1alpha1.VerdictPassed {
		t.Errorf("verdict %s (%s), want Passed: 64Mi stays under the 128Mi limit", exp.Status.Verdict, exp.Status.Message)
	}
	if len(exp.Status.Records) != 1 || exp.Status.Records[0].RecoveredAt == nil {
		t.Errorf("records %+v, want the fault recovered", exp.Status.Records)
	}
	assertNoStressorsLeft(t, env)
	_ = c.Delete(ctx, &exp)
}

// Node mode (the kubelet evicting in its documented order) is checked by
// the catalog gate on memory-overcommit/hardened, which runs the very same
// workload and experiment (experiments/catalog/gate_sandbox_test.go).

func TestNodeMemoryAboveTheAllocatableIsRefusedNamingTheField(t *testing.T) {
	sandboxtest.Parallel(t, sandboxtest.Shared(sandboxtest.ControlPlane))
	env := sandboxtest.Get(t)
	c := kube(t, env)
	doc := `apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: too-much-memory, namespace: default}
spec:
  targets: {nodes: {names: [real-0]}}
  faults:
  - name: squeeze
    type: MemoryPressure
    duration: 30s
    memoryPressure: {size: 3Gi, rampPerSecond: 64Mi}
`
	cleanupExp(t, c, "too-much-memory")
	out, code := runCLI(t, env, "run", "--timeout", "2m", "-f", writeFile(t, doc))
	if code != 2 || !strings.Contains(out, "spec.faults[squeeze].memoryPressure.size: 3Gi is above the allocatable memory of node real-0 (1Gi); set force: true") {
		t.Errorf("exit %d, want 2 with the field named:\n%s", code, out)
	}
	if exp := getExp(t, c, "too-much-memory"); len(exp.Status.Records) != 0 {
		t.Errorf("records %+v, want nothing injected", exp.Status.Records)
	}
}
