//go:build sandbox

package prometheus_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"faultline.dev/faultline/analyzers/prometheus"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// window is how long each window lasts: the sandbox's Prometheus scrapes
// every 5 s, so each series has several samples in it.
const window = 20 * time.Second

// TestBothSourcesMeasureEtcdAndTheAPIServersWrites runs a Prometheus
// server source and a scraper side by side through the three windows,
// while ConfigMaps are written, and checks that both measure etcd's WAL
// fsyncs and the API server's writes in each.
func TestBothSourcesMeasureEtcdAndTheAPIServersWrites(t *testing.T) {
	env := sandboxtest.Get(t)
	if env.State.PrometheusURL == "" {
		t.Fatal("the shared sandbox runs no Prometheus; sandboxtest.Config asks for one")
	}
	etcd := env.State.Components["etcd"]
	if len(etcd.Ports) < 3 {
		t.Fatalf("etcd's ports are %v; want client, peer and metrics", etcd.Ports)
	}
	apiClient, err := rest.HTTPClientFor(env.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	server, err := prometheus.New(prometheus.Config{Address: env.State.PrometheusURL, Queries: []prometheus.Query{
		{Name: "hasLeader", Query: "scalar(sum(etcd_server_has_leader))", SuccessCondition: "result == 1.0", Interval: 5 * time.Second},
		{Name: "hasLeaderVector", Query: "sum(etcd_server_has_leader)", SuccessCondition: "result == [1.0]", Interval: 5 * time.Second},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	scraper, err := prometheus.New(prometheus.Config{Scrape: &prometheus.Scrape{
		Etcd:      []prometheus.Target{{URL: fmt.Sprintf("http://127.0.0.1:%d/metrics", etcd.Ports[2])}},
		APIServer: &prometheus.Target{URL: env.RESTConfig.Host + "/metrics", Client: apiClient},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]*prometheus.Analyzer{"server": server, "scraper": scraper}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	stopWrites := writeConfigMaps(ctx, t, env.Client.CoreV1())
	defer stopWrites()
	runs := make(chan error, len(sources))
	for _, a := range sources {
		go func() { runs <- a.Run(ctx) }()
	}
	for i, b := range []prometheus.Boundary{prometheus.BaselineStart, prometheus.FaultStart, prometheus.FaultEnd, prometheus.RecoveryEnd} {
		if i > 0 {
			time.Sleep(window)
		}
		for _, a := range sources {
			a.Mark(b)
		}
	}
	for range sources {
		if err := <-runs; err != nil {
			t.Fatal(err)
		}
	}
	stopWrites()

	for name, a := range sources {
		m := a.Measure(time.Now())
		t.Logf("%s: %v", name, m)
		if errs := m["errors"].([]string); len(errs) > 0 {
			t.Errorf("%s: errors %q", name, errs)
		}
		for _, w := range []string{"baseline", "fault", "recovery"} {
			win, ok := m[w].(map[string]any)
			if !ok {
				t.Errorf("%s: no %s window", name, w)
				continue
			}
			for _, k := range []string{"walFsyncP99", "apiServerWriteP99"} {
				if v, ok := win[k].(float64); !ok || math.IsInf(v, 0) || v <= 0 {
					t.Errorf("%s: %s.%s = %v, want a finite latency", name, w, k, win[k])
				}
			}
			for _, k := range []string{"walFsyncs", "apiServerWrites"} {
				if v, _ := win[k].(float64); !(v > 0) {
					t.Errorf("%s: %s.%s = %v, want some", name, w, k, win[k])
				}
			}
		}
	}
	for _, q := range []string{"hasLeader", "hasLeaderVector"} {
		got := server.Measure(time.Now())["queries"].(map[string]any)[q].(map[string]any)
		if got["phase"] != "Successful" || got["failed"] != int64(0) {
			t.Errorf("queries.%s = %v, want Successful", q, got)
		}
	}
}

// writeConfigMaps creates and deletes ConfigMaps in a namespace of its own
// until stopped, so that every window has API writes; stopping removes
// the namespace.
func writeConfigMaps(ctx context.Context, t *testing.T, c typedcorev1.CoreV1Interface) func() {
	t.Helper()
	ns, err := c.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "prometheus-analyzer-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		cms := c.ConfigMaps(ns.Name)
		for ctx.Err() == nil {
			cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "write-"}, Data: map[string]string{"at": time.Now().String()}}, metav1.CreateOptions{})
			if err == nil {
				_ = cms.Delete(ctx, cm.Name, metav1.DeleteOptions{})
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			if err := c.Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}); err != nil {
				t.Errorf("delete namespace %s: %v", ns.Name, err)
			}
		})
	}
}
