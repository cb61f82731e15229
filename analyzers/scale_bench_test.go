//go:build sandbox

package analyzers_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"faultline.dev/faultline/analyzers"
	"faultline.dev/faultline/analyzers/evictions"
	"faultline.dev/faultline/analyzers/nodes"
	"faultline.dev/faultline/analyzers/oomkills"
	"faultline.dev/faultline/sandbox"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// BenchmarkNodesAndEvictionsAtScale runs the nodes, evictions and OOM-kill
// analyzers, fed by informers as in the controller (one pod cache, with
// evictions.Strip, for both pod trackers), on a sandbox of 1,000 kwok nodes
// and 30,000 pods, while 6,000 are churned (half deleted, half created).
// It reports the heap after the churn, the CPU time the process used, and
// the events handled per second (goal: under 300 MiB, keeping up).
// FAULTLINE_SCALE_NODES and FAULTLINE_SCALE_PODS change the sizes, up
// to Kubernetes' scalability limit of 5,000 nodes and 150,000 pods:
//
//	go test -tags sandbox -run '^$' -bench NodesAndEvictionsAtScale -benchtime 1x -timeout 30m ./analyzers/
//	FAULTLINE_SCALE_NODES=5000 FAULTLINE_SCALE_PODS=150000 go test -tags sandbox -run '^$' -bench NodesAndEvictionsAtScale -benchtime 1x -timeout 60m ./analyzers/
func BenchmarkNodesAndEvictionsAtScale(b *testing.B) {
	sandboxtest.RequireRoot(b)
	bins, err := sandboxtest.Binaries()
	if err != nil {
		b.Fatal(err)
	}
	c := sandbox.DefaultConfig()
	size := func(env string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(env)); err == nil && v > 0 {
			return v
		}
		return def
	}
	nodeCount, podCount := size("FAULTLINE_SCALE_NODES", 1000), size("FAULTLINE_SCALE_PODS", 30000)
	c.Name, c.SharedKwokNodes, c.IsolatedKwokNodes, c.RealNodes, c.BinDir = "scale-bench", nodeCount, 0, 0, bins
	_ = sandbox.Down(c, nil)
	st, err := sandbox.Up(context.Background(), c, sandbox.NewProgress(os.Stderr), false)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sandbox.Down(c, nil) }()
	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig)
	if err != nil {
		b.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 2000, 4000
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()

	const perNS = 1000
	namespaces := max(1, podCount/perNS)
	pod := func(ns string, i int) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%d", i), Namespace: ns, Labels: map[string]string{"app": "scale"}},
			Spec: corev1.PodSpec{NodeName: sandbox.SharedKwokNodeName(i % nodeCount),
				Containers: []corev1.Container{{Name: "c", Image: "x", Env: []corev1.EnvVar{{Name: "PADDING", Value: fmt.Sprintf("%0200d", i)}}}}},
		}
	}
	parallel := func(n int, f func(i int) error) {
		var wg sync.WaitGroup
		work := make(chan int)
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					if err := f(i); err != nil && !apierrors.IsAlreadyExists(err) && !apierrors.IsNotFound(err) {
						b.Error(err)
					}
				}
			}()
		}
		for i := range n {
			work <- i
		}
		close(work)
		wg.Wait()
	}
	for n := range namespaces {
		ns := fmt.Sprintf("scale-%d", n)
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			b.Fatal(err)
		}
	}
	start := time.Now()
	parallel(namespaces*perNS, func(i int) error {
		_, err := cs.CoreV1().Pods(fmt.Sprintf("scale-%d", i/perNS)).Create(ctx, pod(fmt.Sprintf("scale-%d", i/perNS), i%perNS), metav1.CreateOptions{})
		return err
	})
	b.Logf("%d pods on %d nodes created in %s", namespaces*perNS, nodeCount, time.Since(start).Round(time.Second))

	// The analyzers, fed by informers as in the controller.
	var before syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	var events atomic.Int64
	factory := informers.NewSharedInformerFactory(kubernetes.NewForConfigOrDie(cfg), 0)
	podInf := factory.Core().V1().Pods().Informer()
	if err := podInf.SetTransform(evictions.Strip); err != nil {
		b.Fatal(err)
	}
	nt, et, ot := nodes.New(), evictions.New(time.Now()), oomkills.New(time.Now())
	if _, err := factory.Core().V1().Nodes().Informer().AddEventHandler(analyzers.Handler(func(n *corev1.Node, _ bool) {
		events.Add(1)
		nt.Observe(n, time.Now())
	})); err != nil {
		b.Fatal(err)
	}
	if _, err := podInf.AddEventHandler(analyzers.Handler(func(p *corev1.Pod, _ bool) {
		events.Add(1)
		et.Observe(p)
		ot.Observe(p)
	})); err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	factory.WaitForCacheSync(stop)
	synced := time.Now()

	// Churn: a fifth of the pods' number in deletions and creations, half
	// each (6,000 for 30,000).
	churnStart := time.Now()
	parallel(namespaces*perNS/5, func(i int) error {
		ns := fmt.Sprintf("scale-%d", i%namespaces)
		if i%2 == 0 {
			return cs.CoreV1().Pods(ns).Delete(ctx, fmt.Sprintf("p-%d", i/2), metav1.DeleteOptions{})
		}
		_, err := cs.CoreV1().Pods(ns).Create(ctx, pod(ns, perNS+i), metav1.CreateOptions{})
		return err
	})
	churn := time.Since(churnStart)
	// Keeping up: how long after the churn the informer has seen the
	// server's revision as of the end of the churn.
	list, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		b.Fatal(err)
	}
	target, _ := strconv.ParseUint(list.ResourceVersion, 10, 64)
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if seen, _ := strconv.ParseUint(podInf.LastSyncResourceVersion(), 10, 64); seen >= target {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	lag := time.Since(churnStart) - churn
	b.StopTimer()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
	elapsed := time.Since(synced)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	b.ReportMetric(cpu.Seconds(), "cpu-s")
	b.ReportMetric(float64(events.Load())/elapsed.Seconds(), "events/s")
	b.ReportMetric(lag.Seconds(), "lag-after-churn-s")
	b.Logf("pods in the informer %d; %d events; churn took %s; the informer reached the server's revision %s after it",
		len(podInf.GetStore().List()), events.Load(), churn.Round(time.Millisecond), lag.Round(time.Millisecond))
	_ = nt.Measure(time.Now())
	_ = et.Measure(time.Now())
	_ = ot.Measure(time.Now())
}
