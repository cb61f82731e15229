package evictions

import (
	"fmt"
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// kwokPod is a pod as a kwok node reports it running: what the pod cache
// holds on the scale benchmark's cluster, without the cluster.
func kwokPod(i int) *corev1.Pod {
	at := metav1.NewTime(t0)
	ns := fmt.Sprintf("scale-%d", i/1000)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%d", i), Namespace: ns, UID: types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i)),
			ResourceVersion: fmt.Sprint(1000 + i), CreationTimestamp: at, Labels: map[string]string{"app": "scale"}},
		Spec: corev1.PodSpec{NodeName: fmt.Sprintf("kwok-node-%d", i%1000),
			Containers: []corev1.Container{{Name: "c", Image: "x", Env: []corev1.EnvVar{{Name: "PADDING", Value: fmt.Sprintf("%0200d", i)}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, QOSClass: corev1.PodQOSBestEffort, HostIP: "10.0.0.1", PodIP: "10.1.0.1", StartTime: &at,
			Conditions: []corev1.PodCondition{{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: at},
				{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: at},
				{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: at},
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: at}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "c", Ready: true, Image: "x", ImageID: "docker.io/library/x@sha256:0123", ContainerID: "containerd://0123",
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at}}}}},
	}
}

// BenchmarkStripHeld reports the heap that 30,000 stripped pods hold, as
// the pod cache holds them: the in-process part of the scale benchmark,
// which needs no cluster. Running pods, then with one pod in ten restarted
// after an OOM kill, whose container status is kept.
//
//	go test -run '^$' -bench StripHeld -benchtime 1x ./analyzers/evictions/
func BenchmarkStripHeld(b *testing.B) {
	for name, killedEvery := range map[string]int{"running": 0, "a tenth OOM-killed": 10} {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				held := make([]any, 30000)
				for i := range held {
					p := kwokPod(i)
					if killedEvery > 0 && i%killedEvery == 0 {
						s := &p.Status.ContainerStatuses[0]
						s.RestartCount = 1
						s.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{Reason: "OOMKilled", ExitCode: 137, FinishedAt: metav1.NewTime(t0)}
					}
					held[i], _ = Strip(p)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "held-MiB")
				runtime.KeepAlive(held)
			}
		})
	}
}
