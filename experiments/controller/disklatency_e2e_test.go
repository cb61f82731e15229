//go:build sandbox

package controller_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"faultline.dev/faultline/deploy"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/injectors/disklatency"
	"faultline.dev/faultline/sandbox"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

// etcdExample is a shipped etcd example pointed at the test sandbox: its
// etcd (by data directory), a node whose agent sees it, and the Prometheus
// server or the /metrics endpoints the sandbox started. edit changes the
// experiment further.
func etcdExample(t *testing.T, env *sandboxtest.Env, file, name, source string, edit func(*v1alpha1.Experiment)) string {
	t.Helper()
	b, err := deploy.Files.ReadFile("examples/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var exp v1alpha1.Experiment
	if err := yaml.UnmarshalStrict(b, &exp); err != nil {
		t.Fatal(err)
	}
	exp.Name = name
	exp.Spec.Targets.Nodes.Names = []string{etcdNode(t, env)}
	for i := range exp.Spec.Faults {
		if p := exp.Spec.Faults[i].DiskLatency.Process; p != nil {
			p.CommandLineContains = "--data-dir=" + filepath.Join(env.State.Config.Dir(), "etcd")
		}
	}
	pr := exp.Spec.Prometheus
	switch source {
	case "prometheus":
		pr.Address = env.State.PrometheusURL
	case "scrape":
		pr.Address = ""
		pr.Scrape = &v1alpha1.Scrape{Etcd: []string{fmt.Sprintf("http://127.0.0.1:%d/metrics", env.State.Components["etcd"].Ports[2])}, APIServer: true}
		// Queries are PromQL: they need a server.
		pr.Queries = nil
		var kept []v1alpha1.Objective
		for _, o := range exp.Spec.Objectives {
			if !strings.Contains(o.Expr, "prometheus.queries.") {
				kept = append(kept, o)
			}
		}
		exp.Spec.Objectives = kept
	}
	if edit != nil {
		edit(&exp)
	}
	out, err := yaml.Marshal(&exp)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// writeLoad makes API writes (ConfigMap creates and deletes, 5 a second)
// until stop is closed, so that the API server's write latency has samples
// in every window.
func writeLoad(t *testing.T, env *sandboxtest.Env, ns string, stop <-chan struct{}) *sync.WaitGroup {
	t.Helper()
	ctx := context.Background()
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}) })
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			name := fmt.Sprintf("load-%d", i)
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"i": fmt.Sprint(i)}}
			if _, err := env.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err == nil {
				_ = env.Client.CoreV1().ConfigMaps(ns).Delete(ctx, name, metav1.DeleteOptions{})
			}
		}
	}()
	return &wg
}

// etcdNode is a node whose agent shares the host's processes, where the
// sandbox's etcd runs: the last isolated node, which the node-loss tests
// (isolated-0) leave alone.
func etcdNode(t *testing.T, env *sandboxtest.Env) string {
	name := ""
	for _, n := range env.State.Nodes {
		if n.Kind == sandbox.NodeIsolated {
			name = n.Name
		}
	}
	if name == "" {
		t.Fatal("the sandbox has no isolated node, whose agent would trace etcd")
	}
	return name
}

// It slows etcd: each way of measuring on a sandbox of its own, with
// Prometheus for the one that queries it, the two side by side. Tracing
// every system call of etcd costs CPU, and the fsync p99 it measures is
// a matter of milliseconds: it holds the machine alone, and first (a
// test that is not parallel runs before the parallel ones start), rather
// than waiting for every test that shares the machine to end.
func TestEtcdDiskLatencyShowsInEtcdsOwnMetrics(t *testing.T) {
	sandboxtest.Hold(t, sandboxtest.Alone(sandboxtest.Machine))
	for _, source := range []string{"prometheus", "scrape"} {
		t.Run("measured through "+source, func(t *testing.T) {
			t.Parallel()
			env := sandboxtest.Own(t, "etcd-"+source[:4], func(c *sandbox.Config) {
				c.Prometheus, c.IsolatedKwokNodes, c.SharedKwokNodes = source == "prometheus", 1, 0
			})
			c := kube(t, env)
			etcd := env.State.Components["etcd"]
			name := "etcd-disk-" + source
			// An objective etcd cannot meet under a slow disk, so that the
			// verdict is seen to follow the measurements, not just pass.
			doc := etcdExample(t, env, "etcd-disk-latency.yaml", name, source, func(exp *v1alpha1.Experiment) {
				exp.Spec.Objectives = append(exp.Spec.Objectives, v1alpha1.Objective{Name: "WAL fsync p99 stays under 50 ms", Expr: "prometheus.fault.walFsyncP99 < 0.05"})
				// 30 s of the example's 60: every call is delayed, and at
				// about 6 fsyncs a second its p99 is the delay either way.
				exp.Spec.Faults[0].Duration.Duration = 30 * time.Second
			})
			cleanupExp(t, c, name)
			stop := make(chan struct{})
			wg := writeLoad(t, env, "load-"+source, stop)
			_, out, code := kubectlRun(t, env, "apply", writeFile(t, doc), "--timeout", "6m")
			close(stop)
			wg.Wait()
			t.Logf("run exited %d:\n%s", code, out)
			exp := getExp(t, c, name)
			t.Logf("measurements: %v", exp.Status.Measurements)

			fault, after := measurement(t, exp, "prometheus.fault.walFsyncP99"), measurement(t, exp, "prometheus.recovery.walFsyncP99")
			if fault < 0.1 {
				t.Errorf("WAL fsync p99 during the fault: %.4f s, want at least 0.1 s", fault)
			}
			if after >= 0.025 {
				t.Errorf("WAL fsync p99 after the fault: %.4f s, want under 0.025 s (a quarter of the delay)", after)
			}
			base, slow := measurement(t, exp, "prometheus.baseline.apiServerWriteP99"), measurement(t, exp, "prometheus.fault.apiServerWriteP99")
			if slow <= base {
				t.Errorf("API server write p99: %.4f s during the fault, %.4f s before it; want it up", slow, base)
			}
			if code != 1 || exp.Status.Verdict != v1alpha1.VerdictFailed {
				t.Errorf("exit %d, verdict %s; want 1 and Failed (one objective asks for fsync p99 under 50 ms)", code, exp.Status.Verdict)
			}
			for _, o := range exp.Status.Objectives {
				want := v1alpha1.VerdictPassed
				if strings.Contains(o.Name, "under 50 ms") {
					want = v1alpha1.VerdictFailed
				}
				if o.Verdict != want {
					t.Errorf("objective %q: %s (%s), want %s", o.Name, o.Verdict, o.Message, want)
				}
			}
			// Nothing left behind: every thread of etcd untraced.
			tr, err := disklatency.Tracers(etcd.PID)
			if err != nil {
				t.Fatal(err)
			}
			for tid, by := range tr {
				if by != 0 {
					t.Errorf("etcd thread %d is still traced by %d", tid, by)
				}
			}
		})
	}
}

func TestADiskLatencyTargetThatMatchesNoProcessIsAnErrorNamingTheField(t *testing.T) {
	sandboxtest.Parallel(t, sandboxtest.Alone(sandboxtest.Node("isolated-1")), sandboxtest.Shared(sandboxtest.ControlPlane))
	env := sandboxtest.Get(t)
	c := kube(t, env)
	name := "etcd-disk-nobody"
	// Nothing will be measured: keep the windows short.
	short := &metav1.Duration{Duration: 10 * time.Second}
	doc := etcdExample(t, env, "etcd-disk-latency.yaml", name, "scrape", func(exp *v1alpha1.Experiment) {
		exp.Spec.Faults[0].DiskLatency.Process.Name = "no-such-proc"
		exp.Spec.Faults[0].Duration = *short
		exp.Spec.Prometheus.Baseline, exp.Spec.Prometheus.Recovery = short, short
	})
	cleanupExp(t, c, name)
	out, code := runCLI(t, env, "run", "--timeout", "4m", "-f", writeFile(t, doc))
	t.Logf("run exited %d:\n%s", code, out)
	exp := getExp(t, c, name)
	if code != 2 || exp.Status.Verdict != v1alpha1.VerdictError {
		t.Errorf("exit %d, verdict %s; want 2 and Error:\n%s", code, exp.Status.Verdict, out)
	}
	if !strings.Contains(exp.Status.Message, `processName, commandLineContains: no process is named "no-such-proc"`) {
		t.Errorf("message %q does not name the fields", exp.Status.Message)
	}
}
