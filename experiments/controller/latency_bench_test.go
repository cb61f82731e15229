//go:build sandbox

package controller_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/injectors/netloss"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

// BenchmarkInjectionAndRecoveryLatency measures, over 20 experiments on an
// isolated node: injection latency, from the Experiment's creation until
// its nftables table is in the node's namespace; and recovery latency,
// from the fault's deadline until the table is gone. It reports p50 and
// p99 of each (goals: p99 under 2 s and under 1 s).
//
//	go test -tags sandbox -run '^$' -bench InjectionAndRecoveryLatency -benchtime 1x ./experiments/controller/
func BenchmarkInjectionAndRecoveryLatency(b *testing.B) {
	env := sandboxtest.Get(b)
	c := kube(b, env)
	ctx := context.Background()
	const node, runs, dur = "isolated-1", 20, 3 * time.Second
	ns := "/run/netns/" + env.Plan.NetnsName(node)
	super := env.Plan.Super.Addr().As4()
	// The client's first call discovers the API; keep that out of the timing.
	var warm v1alpha1.ExperimentList
	if err := c.List(ctx, &warm); err != nil {
		b.Fatal(err)
	}
	var inject, recov []float64
	for i := range runs * b.N {
		name := fmt.Sprintf("latency-%d", i)
		doc := strings.Replace(partition(name, node, dur, "nodes.maxNotReadySeconds < 600"),
			"towardAPIServer: true", fmt.Sprintf("peers: [%d.%d.99.0/24]", super[0], super[1]), 1)
		objs, err := decodeExperiment(doc)
		if err != nil {
			b.Fatal(err)
		}
		created := time.Now()
		if err := c.Create(ctx, objs); err != nil {
			b.Fatal(err)
		}
		in := poll(b, 10*time.Second, func() bool { ts, _ := netloss.Tables(ns); return len(ts) == 1 })
		inject = append(inject, in.Sub(created).Seconds())
		// The agent may inject before the controller's status write lands.
		var exp v1alpha1.Experiment
		poll(b, 10*time.Second, func() bool {
			return c.Get(ctx, client.ObjectKeyFromObject(objs), &exp) == nil && exp.Status.StartTime != nil
		})
		deadline := exp.Status.StartTime.Add(dur)
		out := poll(b, 15*time.Second, func() bool { ts, _ := netloss.Tables(ns); return len(ts) == 0 })
		recov = append(recov, out.Sub(deadline).Seconds())
		_ = c.Delete(ctx, &exp)
	}
	p := func(xs []float64, q float64) float64 {
		s := append([]float64(nil), xs...)
		sort.Float64s(s)
		return s[int(q*float64(len(s)-1)+0.5)]
	}
	b.Logf("injection latencies (s): %.3f", inject)
	b.Logf("recovery latencies (s): %.3f", recov)
	b.ReportMetric(p(inject, 0.5), "inject-p50-s")
	b.ReportMetric(p(inject, 0.99), "inject-p99-s")
	b.ReportMetric(p(recov, 0.5), "recover-p50-s")
	b.ReportMetric(p(recov, 0.99), "recover-p99-s")
}

func poll(b *testing.B, timeout time.Duration, cond func() bool) time.Time {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %s", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Now()
}

func decodeExperiment(doc string) (*v1alpha1.Experiment, error) {
	var exp v1alpha1.Experiment
	if err := yaml.Unmarshal([]byte(doc), &exp); err != nil {
		return nil, err
	}
	return &exp, nil
}
