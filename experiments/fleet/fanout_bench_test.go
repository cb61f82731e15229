package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/controller"
	"faultline.dev/faultline/experiments/fleet"
	"faultline.dev/faultline/sandbox"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

const (
	faultlineNS   = "faultline-system"
	identitiesNS  = "faultline-agents"
	fleetLabel    = "faultline.dev/fleet"
	faultDuration = 20 * time.Second
)

// apiServer starts a real API server and etcd (the sandbox's binaries) with
// faultline's CRDs, and returns its admin config, with room for bulk writes.
func apiServer(b *testing.B) (*rest.Config, []byte) {
	b.Helper()
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "deploy", "crds")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: sandbox.ToolsDir(),
	}
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop() // what came up before the failure
		b.Fatalf("envtest (the sandbox's etcd and kube-apiserver, from make tools): %v", err)
	}
	b.Cleanup(func() { _ = env.Stop() })
	cfg.QPS, cfg.Burst = 1000, 2000
	return cfg, env.KubeConfig
}

func newClient(b *testing.B, cfg *rest.Config) client.Client {
	b.Helper()
	scheme, err := controller.NewScheme()
	if err != nil {
		b.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// parallel runs f for 0..n-1 on 32 workers and returns the first error.
func parallel(n int, f func(i int) error) error {
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	next := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// writes is the API server's count of write requests (apiserver_request_total
// of POST, PUT, PATCH and DELETE), from its own /metrics, by resource (and
// subresource) and verb.
func writes(b *testing.B, cs kubernetes.Interface) map[string]float64 {
	b.Helper()
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	dec := expfmt.NewDecoder(strings.NewReader(string(raw)), expfmt.NewFormat(expfmt.TypeTextPlain))
	out := map[string]float64{}
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			b.Fatal(err)
		}
		if mf.GetName() != "apiserver_request_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if slices.Contains([]string{"POST", "PUT", "PATCH", "DELETE"}, l["verb"]) {
				key := l["verb"] + " " + l["resource"]
				if l["subresource"] != "" {
					key += "/" + l["subresource"]
				}
				out[key] += m.GetCounter().GetValue()
			}
		}
	}
}

// total is the sum of after's counts over before's, and the largest
// contributions as text.
func total(before, after map[string]float64) (float64, string) {
	type kv struct {
		k string
		v float64
	}
	var all []kv
	sum := 0.0
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			all = append(all, kv{k, d})
			sum += d
		}
	}
	slices.SortFunc(all, func(a, b kv) int { return int(b.v - a.v) })
	var top []string
	for _, x := range all[:min(5, len(all))] {
		top = append(top, fmt.Sprintf("%s %.0f", x.k, x.v))
	}
	return sum, strings.Join(top, ", ")
}

// procStat is a process's CPU seconds so far and its peak resident memory.
func procStat(b *testing.B, pid int) (cpu float64, peakMiB float64) {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command's closing parenthesis: utime and stime are
	// the 14th and 15th of the line, in clock ticks (100 a second here).
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			peakMiB = kb / 1024
		}
	}
	return (ut + st) / 100, peakMiB
}

// quantiles are the p50 and p99 of durations, in seconds.
func quantiles(ds []time.Duration) (p50, p99 float64) {
	h := hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)
	for _, d := range ds {
		_ = h.RecordValue(max(1, d.Microseconds()))
	}
	return float64(h.ValueAtQuantile(50)) / 1e6, float64(h.ValueAtQuantile(99)) / 1e6
}

// The controller's fan-out to a fleet of nodes, each with the agent's own
// engine, ledger, watch and identity (the controller makes a ServiceAccount,
// a Role and a RoleBinding per node): one experiment with node
// targets on every node, from its creation until every agent has
// acknowledged its FaultAssignment, and from the deadline until every agent
// has reported its fault recovered. FAULTLINE_FLEET_NODES sets the fleet's
// size (1000 by default), FAULTLINE_FLEET_CONTROLLER_QPS the controller's
// --kube-api-qps and burst (its defaults otherwise). Run it as make
// bench-fanout does:
//
//	go test -run '^$' -bench BenchmarkFanOut -benchtime 1x ./experiments/fleet/
func BenchmarkFanOut(b *testing.B) {
	n := 1000
	if v := os.Getenv("FAULTLINE_FLEET_NODES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("FAULTLINE_FLEET_NODES=%q: want a number of nodes", v)
		}
	}
	cfg, kubeconfig := apiServer(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := newClient(b, cfg)
	cs := kubernetes.NewForConfigOrDie(cfg)
	for _, ns := range []string{faultlineNS, identitiesNS} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			b.Fatal(err)
		}
	}
	// The chart's agent ClusterRole, the template of every node's identity.
	raw, err := os.ReadFile(filepath.Join("..", "..", "charts", "faultline", "files", "rbac", "agent", "role.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(raw, &role); err != nil {
		b.Fatal(err)
	}
	if err := c.Create(ctx, &role); err != nil {
		b.Fatal(err)
	}
	// The simulated agents' caches log through controller-runtime, which
	// otherwise prints a stack for a logger never set: to a file, as the
	// controller's.
	agentLogs, err := os.Create(filepath.Join(b.TempDir(), "agents.log"))
	if err != nil {
		b.Fatal(err)
	}
	ctrllog.SetLogger(zap.New(zap.WriteTo(agentLogs)))
	nodes := make([]string, n)
	start := time.Now()
	if err := parallel(n, func(i int) error {
		nodes[i] = fmt.Sprintf("fleet-%04d", i)
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodes[i], Labels: map[string]string{fleetLabel: "true"}}}
		if err := c.Create(ctx, node); err != nil {
			return err
		}
		node.Status = corev1.NodeStatus{
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
			Allocatable: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("8Gi")},
		}
		return c.Status().Update(ctx, node)
	}); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d Nodes made in %s", n, time.Since(start).Round(time.Millisecond))

	// The controller, as the chart runs it, in a process of its own.
	bins, err := sandboxtest.Binaries()
	if err != nil {
		b.Fatal(err)
	}
	kc := filepath.Join(b.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, kubeconfig, 0o600); err != nil {
		b.Fatal(err)
	}
	args := []string{"--namespace=" + faultlineNS, "--leader-elect=false", "--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--agent-role=faultline-agent", "--agent-namespace=" + identitiesNS}
	if qps := os.Getenv("FAULTLINE_FLEET_CONTROLLER_QPS"); qps != "" {
		args = append(args, "--kube-api-qps="+qps, "--kube-api-burst="+qps)
	}
	ctrlCmd := exec.Command(filepath.Join(bins, "faultline-controller"), args...)
	ctrlCmd.Env = append(os.Environ(), "KUBECONFIG="+kc)
	logs, err := os.Create(filepath.Join(b.TempDir(), "controller.log"))
	if err != nil {
		b.Fatal(err)
	}
	ctrlCmd.Stdout, ctrlCmd.Stderr = logs, logs
	if err := ctrlCmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ctrlCmd.Process.Kill(); _ = ctrlCmd.Wait() })
	pid := ctrlCmd.Process.Pid

	// Every node's identity, before the fleet asks for its tokens.
	start = time.Now()
	for {
		var sas corev1.ServiceAccountList
		if err := c.List(ctx, &sas, client.InNamespace(identitiesNS)); err != nil {
			b.Fatal(err)
		}
		if len(sas.Items) >= n {
			break
		}
		if time.Since(start) > 15*time.Minute {
			b.Fatalf("%d of %d identities after 15 minutes (controller log: %s)", len(sas.Items), n, logs.Name())
		}
		time.Sleep(time.Second)
	}
	identities := time.Since(start)
	b.Logf("%d identities (ServiceAccount, Role, RoleBinding each) made by the controller in %s", n, identities.Round(time.Second))

	var agentErrs sync.Map
	fl, err := fleet.Start(ctx, cfg, fleet.Options{Nodes: nodes, Namespace: identitiesNS, Identity: true, Dir: b.TempDir(),
		OnError: func(node string, err error) { agentErrs.Store(node, err) }})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { cancel(); fl.Wait() }()

	// When each node acknowledged (its agent reported the assignment's
	// generation with the fault) and recovered it, from an informer.
	var mu sync.Mutex
	acked, recovered := map[string]time.Time{}, map[string]time.Time{}
	scheme, _ := controller.NewScheme()
	informers, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	inf, err := informers.GetInformer(ctx, &v1alpha1.FaultAssignment{})
	if err != nil {
		b.Fatal(err)
	}
	see := func(obj any) {
		fa, ok := obj.(*v1alpha1.FaultAssignment)
		if !ok || len(fa.Spec.Faults) == 0 {
			return
		}
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for _, s := range fa.Status.Faults {
			if fa.Status.ObservedGeneration >= fa.Generation && (s.State == v1alpha1.FaultInjected || s.State == v1alpha1.FaultRecovered) {
				if _, ok := acked[fa.Name]; !ok {
					acked[fa.Name] = now
				}
			}
			if s.State == v1alpha1.FaultRecovered {
				if _, ok := recovered[fa.Name]; !ok {
					recovered[fa.Name] = now
				}
			}
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: see, UpdateFunc: func(_, o any) { see(o) }}); err != nil {
		b.Fatal(err)
	}
	go func() { _ = informers.Start(ctx) }()
	informers.WaitForCacheSync(ctx)

	exp := &v1alpha1.Experiment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "fan-out"},
		Spec: v1alpha1.ExperimentSpec{
			Targets: v1alpha1.Targets{Nodes: &v1alpha1.NodeTargets{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{fleetLabel: "true"}}}},
			Faults: []v1alpha1.Fault{{Name: "loss", Type: v1alpha1.FaultNetworkLoss, Duration: metav1.Duration{Duration: faultDuration},
				NetworkLoss: &v1alpha1.NetworkLoss{LossPercent: 10}}},
		},
	}
	cpu0, _ := procStat(b, pid)
	writes0 := writes(b, cs)
	b.ResetTimer()
	created := time.Now()
	if err := c.Create(ctx, exp); err != nil {
		b.Fatal(err)
	}
	wait := func(what string, done func() bool, limit time.Duration) {
		for until := time.Now().Add(limit); !done(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(until) {
				_ = c.Get(ctx, client.ObjectKeyFromObject(exp), exp)
				var sample []string
				agentErrs.Range(func(k, v any) bool { sample = append(sample, fmt.Sprintf("%s: %v", k, v)); return len(sample) < 3 })
				b.Fatalf("%s: not within %s; experiment %s (%s); agents' errors: %v", what, limit, exp.Status.Phase, exp.Status.Message, sample)
			}
		}
	}
	count := func(m map[string]time.Time) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return len(m) >= n }
	}
	wait("every node's acknowledgement", count(acked), 10*time.Minute)
	allAcked := time.Since(created)
	writesAcked := writes(b, cs)
	wait("every node's recovery", count(recovered), faultDuration+10*time.Minute)
	b.StopTimer()
	cpu1, peak := procStat(b, pid)
	writes1 := writes(b, cs)
	if err := c.Get(ctx, client.ObjectKeyFromObject(exp), exp); err != nil {
		b.Fatal(err)
	}
	var deadline time.Time
	if exp.Status.StartTime != nil {
		deadline = exp.Status.StartTime.Add(faultDuration)
	}
	var ackDs, recDs []time.Duration
	mu.Lock()
	for node, at := range acked {
		ackDs = append(ackDs, at.Sub(created))
		recDs = append(recDs, recovered[node].Sub(deadline))
	}
	mu.Unlock()
	ack50, ack99 := quantiles(ackDs)
	rec50, rec99 := quantiles(recDs)
	b.ReportMetric(float64(n), "nodes")
	b.ReportMetric(ack50, "ack-p50-s")
	b.ReportMetric(ack99, "ack-p99-s")
	b.ReportMetric(rec50, "recovered-p50-s")
	b.ReportMetric(rec99, "recovered-p99-s")
	b.ReportMetric(cpu1-cpu0, "controller-cpu-s")
	b.ReportMetric(peak, "controller-peak-MiB")
	toAck, _ := total(writes0, writesAcked)
	all, top := total(writes0, writes1)
	b.ReportMetric(toAck/allAcked.Seconds(), "writes/s-to-ack")
	b.ReportMetric(all, "writes")
	b.ReportMetric(identities.Seconds(), "identities-s")
	b.Logf("fan-out to %d nodes: all acknowledged %s after creation (p50 %.2fs, p99 %.2fs); recovered p50 %.2fs, p99 %.2fs after the deadline; "+
		"controller %.1f CPU-s, peak %.0f MiB; API server %.0f writes (%.0f/s until all acknowledged; most: %s); fleet holds %d fault(s) at the end",
		n, allAcked.Round(time.Millisecond), ack50, ack99, rec50, rec99, cpu1-cpu0, peak, all, toAck/allAcked.Seconds(), top, fl.Held())
	if fl.Held() != 0 {
		b.Errorf("the fleet still holds %d fault(s) after every node reported recovery", fl.Held())
	}
}

// The RBAC authorizer walks every ClusterRoleBinding for a request that no
// earlier binding allows, and the RoleBindings of the request's namespace
// only. So per-node identities bound cluster-wide slow every such request
// in the cluster. This measures a namespaced user's pod list, which a
// RoleBinding allows, with 0, 1,000 and 5,000 nodes' identities in place,
// and reports p50 and p99, for each shape on an API server of its own:
//
//   - namespaced: what the controller makes (AgentIdentityObjects), a
//     Role and RoleBinding in the agents' namespace;
//
//   - cluster: the shape before, a ClusterRole and ClusterRoleBinding each.
//
//     go test -run '^$' -bench BenchmarkAuthorizationWithNodeIdentities -benchtime 2000x ./experiments/fleet/
func BenchmarkAuthorizationWithNodeIdentities(b *testing.B) {
	tmpl := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "faultline-agent"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"faultassignments"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"faultassignments/status"}, Verbs: []string{"get", "update", "patch"}},
	}}
	shapes := []struct {
		name     string
		identity func(node string) []client.Object
	}{
		{"namespaced", func(node string) []client.Object { return controller.AgentIdentityObjects(tmpl, identitiesNS, node) }},
		{"cluster", func(node string) []client.Object {
			name := v1alpha1.AgentIdentity(node)
			rules := tmpl.DeepCopy().Rules
			for i := range rules {
				rules[i].ResourceNames = []string{node}
			}
			return []client.Object{
				&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules},
				&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
					Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: identitiesNS, Name: name}},
					RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}},
				&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: identitiesNS, Name: name}},
			}
		}},
	}
	for _, shape := range shapes {
		b.Run("bindings="+shape.name, func(b *testing.B) { authorizationWith(b, shape.identity) })
	}
}

// authorizationWith measures the pod list with 0, 1,000 and 5,000 nodes'
// identities made by identity.
func authorizationWith(b *testing.B, identity func(node string) []client.Object) {
	cfg, _ := apiServer(b)
	ctx := context.Background()
	c := newClient(b, cfg)
	for _, ns := range []string{identitiesNS, "team"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			b.Fatal(err)
		}
	}
	// A Role of its own: no controller manager aggregates view's rules here.
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "pod-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}}}}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "dev-pod-reader"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "dev"}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name}}
	for _, o := range []client.Object{role, rb} {
		if err := c.Create(ctx, o); err != nil {
			b.Fatal(err)
		}
	}
	as := rest.CopyConfig(cfg)
	as.Impersonate = rest.ImpersonationConfig{UserName: "dev", Groups: []string{"system:authenticated"}}
	dev := kubernetes.NewForConfigOrDie(as)
	made := 0
	for _, identities := range []int{0, 1000, 5000} {
		if err := parallel(identities-made, func(i int) error {
			for _, o := range identity(fmt.Sprintf("node-%05d", made+i)) {
				// The template ClusterRole is not made here: an owner
				// reference the garbage collector would follow (there is
				// none in this API server) changes nothing for the
				// authorizer.
				o.SetOwnerReferences(nil)
				if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		made = identities
		// The authorizer reads bindings from its informers: let them catch up.
		time.Sleep(2 * time.Second)
		b.Run(fmt.Sprintf("identities=%d", identities), func(b *testing.B) {
			var ds []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := dev.CoreV1().Pods("team").List(ctx, metav1.ListOptions{}); err != nil {
					b.Fatal(err)
				}
				ds = append(ds, time.Since(t0))
			}
			p50, p99 := quantiles(ds)
			b.ReportMetric(p50*1e3, "p50-ms")
			b.ReportMetric(p99*1e3, "p99-ms")
		})
	}
}
