package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/report"
)

// finished is an experiment at its verdict, built from options.
func finished(opts ...func(*v1alpha1.Experiment)) *v1alpha1.Experiment {
	start := metav1.NewTime(time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC))
	exp := &v1alpha1.Experiment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "partition", UID: types.UID("uid-1"), Finalizers: []string{v1alpha1.Finalizer}},
		Spec: v1alpha1.ExperimentSpec{
			Targets: v1alpha1.Targets{Nodes: &v1alpha1.NodeTargets{Names: []string{"worker-1"}}},
			Faults: []v1alpha1.Fault{{Name: "cut", Type: v1alpha1.FaultNetworkLoss, Duration: metav1.Duration{Duration: time.Minute},
				NetworkLoss: &v1alpha1.NetworkLoss{LossPercent: 100}}},
		},
		Status: v1alpha1.ExperimentStatus{Phase: v1alpha1.PhaseFailed, Verdict: v1alpha1.VerdictFailed, Message: "1 of 1 objective(s) not met",
			StartTime: &start, Measurements: map[string]string{"evictions.count": "2"},
			Objectives: []v1alpha1.ObjectiveResult{{Name: "no evictions", Expr: "evictions.count == 0", Verdict: v1alpha1.VerdictFailed}}},
	}
	for _, o := range opts {
		o(exp)
	}
	return exp
}

// withHeavyTraffic fills the status with the most traffic buckets it
// holds, each with many status codes: more than a ConfigMap takes.
func withHeavyTraffic(exp *v1alpha1.Experiment) {
	for i := range 900 {
		b := v1alpha1.TrafficBucket{Start: metav1.NewTime(exp.Status.StartTime.Add(time.Duration(i) * time.Second)), Seconds: 1, Sent: 1000,
			Status: map[string]int64{}, Errors: map[string]int64{}, LatencyP99: "12ms"}
		for code := 200; code < 330; code++ {
			b.Status[fmt.Sprint(code)] = int64(code)
		}
		b.Errors["timeout"] = 3
		exp.Status.Traffic = append(exp.Status.Traffic, b)
	}
	exp.Status.Evictions = []v1alpha1.EvictionRecord{{Pod: "team-a/web-0", Reason: "Evicted", Time: *exp.Status.StartTime}}
}

func reportScheme(t *testing.T) *runtime.Scheme {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return scheme
}

func TestReportConfigMap(t *testing.T) {
	tests := map[string]struct {
		exp *v1alpha1.Experiment
		// trimmed is whether the traffic over time had to go.
		trimmed bool
	}{
		"a finished experiment's report is stored whole in a ConfigMap it owns":            {exp: finished()},
		"a report too big for a ConfigMap loses its per-second traffic first, and says so": {exp: finished(withHeavyTraffic), trimmed: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			c := fake.NewClientBuilder().WithScheme(reportScheme(t)).WithObjects(tt.exp).WithStatusSubresource(tt.exp).Build()
			r := &ExperimentReconciler{Client: c, Reader: c, Analysis: &Analysis{}}
			key := client.ObjectKeyFromObject(tt.exp)
			// Twice: a second reconcile of a finished experiment keeps the
			// report it has.
			for range 2 {
				if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
					t.Fatal(err)
				}
			}
			var cm corev1.ConfigMap
			if err := c.Get(ctx, types.NamespacedName{Namespace: "team-a", Name: "partition-report"}, &cm); err != nil {
				t.Fatal(err)
			}
			if ref := metav1.GetControllerOf(&cm); ref == nil || ref.Kind != "Experiment" || ref.UID != tt.exp.UID {
				t.Errorf("owner %+v, want the experiment, so that it is garbage-collected with it", ref)
			}
			if cm.Labels[LabelReport] != "partition" || cm.Labels[v1alpha1.LabelExperiment] != "uid-1" {
				t.Errorf("labels %v", cm.Labels)
			}
			size := len(cm.Data[ReportKey])
			if size > maxReportBytes {
				t.Errorf("report of %d bytes, more than %d", size, maxReportBytes)
			}
			rep, err := report.Read(strings.NewReader(cm.Data[ReportKey]))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Verdict != "Failed" || len(rep.Objectives) != 1 || rep.Objectives[0].Measured["evictions.count"] != "2" {
				t.Errorf("report verdict %s objectives %+v", rep.Verdict, rep.Objectives)
			}
			dropped := rep.Traffic != nil && len(rep.Traffic.Buckets) == 0 && len(tt.exp.Status.Traffic) > 0
			noted := len(rep.Notes) > 0 && strings.Contains(rep.Notes[0], "traffic over time dropped (900 buckets)")
			if dropped != tt.trimmed || noted != tt.trimmed {
				t.Errorf("traffic dropped %v, noted %v (notes %q), want %v; %d bytes", dropped, noted, rep.Notes, tt.trimmed, size)
			}
			if tt.trimmed && len(rep.Evictions) != 1 {
				t.Errorf("%d evictions, want them kept: the traffic alone was enough to drop", len(rep.Evictions))
			}
		})
	}
}
