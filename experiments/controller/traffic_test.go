package controller

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"faultline.dev/faultline/analyzers/traffic"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

func TestTrafficWindowsFrameTheFaults(t *testing.T) {
	start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	dur := func(s string) *metav1.Duration { d, _ := time.ParseDuration(s); return &metav1.Duration{Duration: d} }
	fault := func(after, d string) v1alpha1.Fault {
		f := v1alpha1.Fault{Name: "f", Duration: *dur(d)}
		if after != "" {
			f.StartAfter = dur(after)
		}
		return f
	}
	tests := map[string]struct {
		traffic         v1alpha1.Traffic
		faults          []v1alpha1.Fault
		resolved        string
		baseline, fault time.Time
		recovery, until time.Time
		wantURL         string
	}{
		"the defaults measure 10 s before and 10 s after one fault": {
			traffic: v1alpha1.Traffic{URL: "http://svc/", Rate: 10}, faults: []v1alpha1.Fault{fault("", "60s")},
			baseline: start.Add(-10 * time.Second), fault: start, recovery: start.Add(time.Minute), until: start.Add(70 * time.Second), wantURL: "http://svc/",
		},
		"the recovery window starts when the last of several faults ends": {
			traffic: v1alpha1.Traffic{URL: "http://svc/", Rate: 10, Baseline: dur("30s"), Recovery: dur("5s")}, faults: []v1alpha1.Fault{fault("", "20s"), fault("15s", "30s")},
			baseline: start.Add(-30 * time.Second), fault: start, recovery: start.Add(45 * time.Second), until: start.Add(50 * time.Second), wantURL: "http://svc/",
		},
		"a Service name resolved at plan time is what the prober requests": {
			traffic: v1alpha1.Traffic{URL: "http://web.shop.svc/x", Rate: 10}, faults: []v1alpha1.Fault{fault("", "10s")}, resolved: "http://10.200.16.7/x",
			baseline: start.Add(-10 * time.Second), fault: start, recovery: start.Add(10 * time.Second), until: start.Add(20 * time.Second), wantURL: "http://10.200.16.7/x",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := metav1.NewTime(start)
			exp := &v1alpha1.Experiment{Spec: v1alpha1.ExperimentSpec{Traffic: &tc.traffic, Faults: tc.faults}, Status: v1alpha1.ExperimentStatus{StartTime: &st, TrafficURL: tc.resolved}}
			cfg, until := TrafficConfig(exp)
			if len(cfg.Windows) != 3 || cfg.Windows[0].Name != "baseline" || cfg.Windows[1].Name != "fault" || cfg.Windows[2].Name != "recovery" {
				t.Fatalf("windows %+v", cfg.Windows)
			}
			for i, want := range []time.Time{tc.baseline, tc.fault, tc.recovery} {
				if !cfg.Windows[i].Start.Equal(want) {
					t.Errorf("window %s starts %s, want %s", cfg.Windows[i].Name, cfg.Windows[i].Start, want)
				}
			}
			if !until.Equal(tc.until) {
				t.Errorf("traffic ends %s, want %s", until, tc.until)
			}
			if cfg.URL != tc.wantURL || cfg.Rate != float64(tc.traffic.Rate) {
				t.Errorf("url %s rate %v", cfg.URL, cfg.Rate)
			}
		})
	}
}

func TestARestartedControllerDoesNotJudgeTrafficItDidNotWatchWhole(t *testing.T) {
	for name, tc := range map[string]struct {
		phase       v1alpha1.Phase
		wantProber  bool
		wantPartial bool
	}{
		"a plan in progress starts the traffic":                           {v1alpha1.PhasePending, true, false},
		"a controller restarted while the faults run measures no traffic": {v1alpha1.PhaseRunning, false, true},
		"a controller restarted while analyzing measures no traffic":      {v1alpha1.PhaseAnalyzing, false, true},
	} {
		t.Run(name, func(t *testing.T) {
			st := metav1.NewTime(time.Now().Add(time.Hour))
			exp := &v1alpha1.Experiment{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "x"},
				Spec:       v1alpha1.ExperimentSpec{Traffic: &v1alpha1.Traffic{URL: "http://127.0.0.1:9/", Rate: 1}, Faults: []v1alpha1.Fault{{Name: "f", Duration: metav1.Duration{Duration: time.Minute}}}},
				Status:     v1alpha1.ExperimentStatus{Phase: tc.phase, StartTime: &st},
			}
			a := NewAnalysis()
			a.create(context.Background(), exp)
			defer a.Forget(client.ObjectKeyFromObject(exp))
			r := a.get(exp)
			if (r.traffic != nil) != tc.wantProber || r.trafficPartial != tc.wantPartial {
				t.Fatalf("prober %v partial %v; want prober %v partial %v", r.traffic != nil, r.trafficPartial, tc.wantProber, tc.wantPartial)
			}
			m := a.Measurements(exp, time.Now())["traffic"]
			if _, has := m["errorRatio"]; has == tc.wantPartial {
				t.Errorf("traffic measurements %v", m)
			}
		})
	}
}

func TestTrafficBucketsFitTheStatus(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	secs := func(n int) []traffic.Second {
		var out []traffic.Second
		for i := range n {
			out = append(out, traffic.Second{Start: t0.Add(time.Duration(i) * time.Second), Sent: 10, Status: map[int]int{200: 9}, Errors: map[string]int{"refused": 1}, LatencyP99: float64(i+1) / 1000})
		}
		return out
	}
	for name, tc := range map[string]struct {
		secs        []traffic.Second
		max         int
		wantBuckets int
		wantWidth   int32
		wantLastP99 string
	}{
		"no traffic yet is no bucket":                          {nil, 900, 0, 0, ""},
		"a short run keeps one bucket per second":              {secs(90), 900, 90, 1, "90ms"},
		"a long run folds seconds into wider buckets":          {secs(2000), 900, 667, 3, "2s"},
		"counts are summed and the worst p99 kept in a bucket": {secs(10), 5, 5, 2, "10ms"},
	} {
		t.Run(name, func(t *testing.T) {
			got := trafficBuckets(tc.secs, tc.max)
			if len(got) != tc.wantBuckets {
				t.Fatalf("%d buckets, want %d", len(got), tc.wantBuckets)
			}
			if len(got) == 0 {
				return
			}
			var sent, refused int64
			for _, b := range got {
				sent += b.Sent
				refused += b.Errors["refused"]
			}
			if sent != int64(10*len(tc.secs)) || refused != int64(len(tc.secs)) || got[0].Seconds != tc.wantWidth {
				t.Errorf("sent %d refused %d width %d", sent, refused, got[0].Seconds)
			}
			if last := got[len(got)-1]; last.LatencyP99 != tc.wantLastP99 {
				t.Errorf("last bucket p99 %q, want %q", last.LatencyP99, tc.wantLastP99)
			}
		})
	}
}
