package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

func TestDescribeShowsTheRolloutAndWhenTrafficFailed(t *testing.T) {
	at := func(s int) *metav1.Time {
		m := metav1.NewTime(time.Date(2026, 11, 22, 10, 0, s, 0, time.UTC))
		return &m
	}
	exp := &v1alpha1.Experiment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "gate"},
		Status: v1alpha1.ExperimentStatus{
			Phase: v1alpha1.PhaseFailed, TrafficURL: "http://10.200.16.9/",
			Records: []v1alpha1.InjectionRecord{{Fault: "sigterm", Target: "shop/web-1", Node: "real-0", InjectedAt: at(12), Action: "SIGTERM to the main process of container web (containerd://abc) through the node's agent"}},
			Rollouts: []v1alpha1.RolloutRecord{{Fault: "sigterm", Deployment: "shop/web", TriggeredAt: at(10), StartedAt: at(10), PointAt: at(12), CompletedAt: at(20),
				NewReplicaSet: "web-2", OldReplicaSets: []string{"web-1"}, Progress: "3/3 new Ready"}},
			Traffic: []v1alpha1.TrafficBucket{
				{Start: *at(11), Seconds: 1, Sent: 200, Status: map[string]int64{"200": 200}},
				{Start: *at(12), Seconds: 1, Sent: 200, Status: map[string]int64{"200": 150, "502": 40}, Errors: map[string]int64{"http502": 40, "refused": 10}, LatencyP99: "2ms"},
			},
		},
	}
	var b bytes.Buffer
	describe(&b, exp)
	out := b.String()
	for _, want := range []string{
		"SIGTERM to the main process of container web",
		"Rollout of shop/web (fault sigterm):",
		"started    10:00:10 (new web-2, old web-1)",
		"Traffic to http://10.200.16.9/: 400 sent, 50 failed, over 2 period(s)",
		"10:00:12  1        200   http502=40 refused=10",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "10:00:11  1") {
		t.Errorf("a period without failures is listed:\n%s", out)
	}
}

func TestKeyFiguresLeadWithWhatTheObjectivesRead(t *testing.T) {
	exp := &v1alpha1.Experiment{
		Spec: v1alpha1.ExperimentSpec{Objectives: []v1alpha1.Objective{
			{Name: "checkout keeps five", Expr: `workloads.byWorkload["shop/checkout"].minAvailable >= 5`},
			{Name: "no 502", Expr: `traffic.status['502'] == 0`},
		}},
		Status: v1alpha1.ExperimentStatus{Measurements: map[string]string{
			"evictions.count": "4",
			"workloads.byWorkload.shop/checkout.minAvailable":       "2",
			"workloads.byWorkload.shop/checkout.unavailableSeconds": "0",
			"traffic.status.502": "7",
			"recovery.seconds":   "1.5",
		}},
	}
	got := keyFigures(exp)
	want := "traffic.status.502=7  workloads.byWorkload.shop/checkout.minAvailable=2  evictions.count=4  recovery.seconds=1.5"
	if got != want {
		t.Errorf("keyFigures:\n got %s\nwant %s", got, want)
	}
}

func TestDescribeSaysWhyAnExperimentDoesNotMove(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 12, 6, 10, 0, 5, 0, time.UTC))
	exp := &v1alpha1.Experiment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "stuck"},
		Status: v1alpha1.ExperimentStatus{Conditions: []metav1.Condition{{
			Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonFinalizerNotSet, LastTransitionTime: at,
			Message: "add the finalizer faultline.dev/recover-faults: admission refused it",
		}}},
	}
	events := []corev1.Event{
		{Type: corev1.EventTypeWarning, Reason: v1alpha1.ReasonFinalizerNotSet, Count: 4, LastTimestamp: at, Message: "add the finalizer faultline.dev/recover-faults: admission refused it"},
		{Type: corev1.EventTypeNormal, Reason: "Accepted", EventTime: metav1.NewMicroTime(at.Add(-time.Second)), Message: "earlier"},
	}
	var b bytes.Buffer
	describe(&b, exp, events...)
	out := b.String()
	for _, want := range []string{
		"Phase:     (none yet: the controller has not taken it up; see Conditions and Events)",
		"Ready  False   FinalizerNotSet  10:00:05",
		"10:00:05   Warning  FinalizerNotSet  4      add the finalizer",
		"10:00:04   Normal   Accepted         1      earlier",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "Accepted") > strings.Index(out, "Warning") {
		t.Errorf("events are not oldest first:\n%s", out)
	}
}
