package oomkills

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// pod builds a pod with options, cert-manager style.
func pod(ns, name, node string, opts ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.PodSpec{NodeName: node}}
	for _, o := range opts {
		o(p)
	}
	return p
}

func container(name string, restarts int32, opts ...func(*corev1.ContainerStatus)) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		s := corev1.ContainerStatus{Name: name, RestartCount: restarts}
		for _, o := range opts {
			o(&s)
		}
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, s)
	}
}

func initContainer(name string, restarts int32, opts ...func(*corev1.ContainerStatus)) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		container(name, restarts, opts...)(p)
		n := len(p.Status.ContainerStatuses)
		p.Status.InitContainerStatuses = append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses[n-1])
		p.Status.ContainerStatuses = p.Status.ContainerStatuses[:n-1]
	}
}

// terminated: the container's current state.
func terminated(reason string, at time.Duration) func(*corev1.ContainerStatus) {
	return func(s *corev1.ContainerStatus) {
		s.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: 137, FinishedAt: metav1.NewTime(t0.Add(at))}}
	}
}

// lastTerminated: the state before the container's restart.
func lastTerminated(reason string, at time.Duration) func(*corev1.ContainerStatus) {
	return func(s *corev1.ContainerStatus) {
		s.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: 137, FinishedAt: metav1.NewTime(t0.Add(at))}}
	}
}

func running(s *corev1.ContainerStatus) {
	s.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(t0)}}
}

func TestOOMKills(t *testing.T) {
	for name, tc := range map[string]struct {
		seen []*corev1.Pod
		want map[string]any
	}{
		"a kill seen terminated, then restarted, then again at a resync is counted once, as a restart": {
			seen: []*corev1.Pod{
				pod("a", "p", "n1", container("app", 0, terminated(OOMKilled, 10*time.Second))),
				pod("a", "p", "n1", container("app", 1, lastTerminated(OOMKilled, 10*time.Second), func(s *corev1.ContainerStatus) {
					s.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
				})),
				pod("a", "p", "n1", container("app", 1, lastTerminated(OOMKilled, 10*time.Second), running)),
				pod("a", "p", "n1", container("app", 1, lastTerminated(OOMKilled, 10*time.Second), running)),
			},
			want: map[string]any{"kills": int64(1), "restarts": int64(1), "pods": int64(1), "containers": int64(1), "secondsToFirst": 10.0, "secondsToLast": 10.0},
		},
		"a kill the container was not restarted after is a kill, not a restart": {
			seen: []*corev1.Pod{pod("a", "p", "n1", container("app", 0, terminated(OOMKilled, 5*time.Second)))},
			want: map[string]any{"kills": int64(1), "restarts": int64(0)},
		},
		"a container killed again after its restart counts two kills": {
			seen: []*corev1.Pod{
				pod("a", "p", "n1", container("app", 1, lastTerminated(OOMKilled, 10*time.Second), running)),
				pod("a", "p", "n1", container("app", 1, lastTerminated(OOMKilled, 10*time.Second), terminated(OOMKilled, 40*time.Second))),
				pod("a", "p", "n1", container("app", 2, lastTerminated(OOMKilled, 40*time.Second), running)),
			},
			want: map[string]any{"kills": int64(2), "restarts": int64(2), "containers": int64(1), "secondsToFirst": 10.0, "secondsToLast": 40.0},
		},
		"kills before the start are ignored": {
			seen: []*corev1.Pod{
				pod("a", "old", "n1", container("app", 3, lastTerminated(OOMKilled, -time.Minute), running)),
				pod("a", "p", "n1", container("app", 4, lastTerminated(OOMKilled, -time.Second), terminated(OOMKilled, 20*time.Second))),
			},
			want: map[string]any{"kills": int64(1), "restarts": int64(0), "secondsToFirst": 20.0},
		},
		"other terminations are not kills": {
			seen: []*corev1.Pod{pod("a", "p", "n1", container("app", 1, lastTerminated("Error", time.Second), terminated("Completed", 2*time.Second)))},
			want: map[string]any{"kills": int64(0), "pods": int64(0)},
		},
		"kills are spread by namespace and node, init containers included": {
			seen: []*corev1.Pod{
				pod("a", "p", "n1", container("app", 1, lastTerminated(OOMKilled, time.Second), running), container("side", 0, running)),
				pod("a", "q", "n2", container("app", 0, terminated(OOMKilled, 2*time.Second))),
				pod("b", "r", "n2", initContainer("setup", 1, lastTerminated(OOMKilled, 3*time.Second))),
			},
			want: map[string]any{"kills": int64(3), "pods": int64(3), "containers": int64(3),
				"byNamespace": map[string]any{"a": int64(2), "b": int64(1)}, "byNode": map[string]any{"n1": int64(1), "n2": int64(2)}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			tr := New(t0)
			for _, p := range tc.seen {
				tr.Observe(p)
			}
			m := tr.Measure(t0.Add(time.Minute))
			for k, v := range tc.want {
				if !reflect.DeepEqual(m[k], v) {
					t.Errorf("%s = %v, want %v", k, m[k], v)
				}
			}
			if tc.want["kills"] == int64(0) {
				if _, ok := m["secondsToFirst"]; ok {
					t.Errorf("secondsToFirst = %v with no kill", m["secondsToFirst"])
				}
			}
		})
	}
}

func TestAResumedCountCarriesOn(t *testing.T) {
	tr := New(t0)
	// Three kills before the restart; the pods still show the last one.
	tr.Resume(3, t0.Add(5*time.Second), t0.Add(30*time.Second))
	tr.Observe(pod("a", "p", "n1", container("app", 3, lastTerminated(OOMKilled, 30*time.Second), running)))
	m := tr.Measure(t0.Add(time.Minute))
	if m["kills"] != int64(3) || m["secondsToFirst"] != 5.0 || m["secondsToLast"] != 30.0 {
		t.Errorf("after the restart: %v, want 3 kills from 5 s to 30 s", m)
	}
	tr.Observe(pod("a", "p", "n1", container("app", 3, lastTerminated(OOMKilled, 30*time.Second), terminated(OOMKilled, 50*time.Second))))
	if m := tr.Measure(t0.Add(time.Minute)); m["kills"] != int64(4) || m["secondsToLast"] != 50.0 {
		t.Errorf("a new kill: %v, want 4 kills, the last at 50 s", m)
	}
}

func TestStripKeepsOnlyTheKills(t *testing.T) {
	p := pod("a", "p", "n1", container("app", 2, lastTerminated(OOMKilled, time.Second), running), container("side", 0, running))
	p.Spec.Containers = []corev1.Container{{Name: "app", Image: "x", Env: make([]corev1.EnvVar, 100)}}
	p.Status.ContainerStatuses[0].Image = "registry/app:1"
	obj, err := Strip(p)
	if err != nil {
		t.Fatal(err)
	}
	s := obj.(*corev1.Pod)
	if len(s.Spec.Containers) != 0 || len(s.Status.ContainerStatuses) != 1 || s.Status.ContainerStatuses[0].Image != "" || s.Status.ContainerStatuses[0].State.Running != nil {
		t.Errorf("stripped pod %+v", s.Status)
	}
	tr := New(t0)
	tr.Observe(s)
	if m := tr.Measure(t0.Add(time.Minute)); m["kills"] != int64(1) || m["restarts"] != int64(1) {
		t.Errorf("a stripped pod measures %v, want one kill and its restart", m)
	}
}
