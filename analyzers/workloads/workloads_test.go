package workloads

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// seen is a Deployment's availability at an offset from t0.
type seen struct {
	at                 time.Duration
	name               string
	available, desired int32
}

func deployment(s seen) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: s.name},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(s.desired)}, Status: appsv1.DeploymentStatus{AvailableReplicas: s.available}}
}

func TestWhatAWorkloadLostWhileItRan(t *testing.T) {
	s := time.Second
	tests := map[string]struct {
		seen                   []seen
		at                     time.Duration
		wantDown, wantDegraded float64
		wantMin                int64
	}{
		"a single replica down from 20 s to 95 s is down 75 s": {
			seen:     []seen{{0, "web", 1, 1}, {20 * s, "web", 0, 1}, {95 * s, "web", 1, 1}},
			at:       2 * time.Minute,
			wantDown: 75, wantDegraded: 75, wantMin: 0,
		},
		"a spread workload that lost one of two replicas is degraded, never down": {
			seen:     []seen{{0, "web", 2, 2}, {20 * s, "web", 1, 2}, {52 * s, "web", 2, 2}},
			at:       2 * time.Minute,
			wantDown: 0, wantDegraded: 32, wantMin: 1,
		},
		"a span still open counts up to now": {
			seen:     []seen{{0, "web", 1, 1}, {30 * s, "web", 0, 1}},
			at:       time.Minute,
			wantDown: 30, wantDegraded: 30, wantMin: 0,
		},
		"the worst workload is the measurement": {
			seen:     []seen{{0, "web", 1, 1}, {0, "api", 2, 2}, {10 * s, "web", 0, 1}, {20 * s, "web", 1, 1}, {10 * s, "api", 0, 2}, {40 * s, "api", 2, 2}},
			at:       time.Minute,
			wantDown: 30, wantDegraded: 30, wantMin: 0,
		},
		"a Deployment not tracked is ignored": {
			seen:     []seen{{0, "web", 1, 1}, {10 * s, "other", 0, 1}},
			at:       time.Minute,
			wantDown: 0, wantDegraded: 0, wantMin: 1,
		},
		"a workload scaled to zero is not down": {
			seen:     []seen{{0, "web", 0, 0}},
			at:       time.Minute,
			wantDown: 0, wantDegraded: 0, wantMin: 0,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tr := New(t0, "shop/web", "shop/api")
			for _, x := range tc.seen {
				tr.Observe(deployment(x), t0.Add(x.at))
			}
			m := tr.Measure(t0.Add(tc.at))
			if m["unavailableSeconds"] != tc.wantDown || m["degradedSeconds"] != tc.wantDegraded || m["minAvailable"] != tc.wantMin {
				t.Errorf("unavailable %v, degraded %v, min %v; want %v, %v, %v", m["unavailableSeconds"], m["degradedSeconds"], m["minAvailable"], tc.wantDown, tc.wantDegraded, tc.wantMin)
			}
		})
	}
}
