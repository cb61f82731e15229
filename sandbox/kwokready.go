package sandbox

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// RestoreKwokPodReadiness does for kwok nodes what a kubelet does when its
// node comes back: it reports its running pods Ready again. While a node is
// unreachable the node controller marks its pods not Ready; kwok has no
// stage that undoes it, so without this a workload on a simulated node
// would never recover after a partition. It runs as a sandbox component.
func RestoreKwokPodReadiness(ctx context.Context, kubeconfig string) error {
	cs, err := clientFor(kubeconfig)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(cs, 30*time.Second)
	nodes := factory.Core().V1().Nodes().Lister()
	pods := factory.Core().V1().Pods()
	podLister := pods.Lister()
	work := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case work <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{AddFunc: poke, UpdateFunc: func(_, o any) { poke(o) }}
	if _, err := pods.Informer().AddEventHandler(handler); err != nil {
		return err
	}
	if _, err := factory.Core().V1().Nodes().Informer().AddEventHandler(handler); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-work:
		case <-time.After(10 * time.Second):
		}
		all, err := podLister.List(labels.Everything())
		if err != nil {
			continue
		}
		for _, p := range all {
			if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || !notReady(p) {
				continue
			}
			n, err := nodes.Get(p.Spec.NodeName)
			if err != nil || n.Labels["type"] != "kwok" || !NodeReady(n) {
				continue
			}
			up := p.DeepCopy()
			now := metav1.Now()
			for i := range up.Status.Conditions {
				if c := &up.Status.Conditions[i]; c.Type == corev1.PodReady || c.Type == corev1.ContainersReady {
					c.Status, c.LastTransitionTime = corev1.ConditionTrue, now
				}
			}
			_, _ = cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, up, metav1.UpdateOptions{})
		}
	}
}

func notReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status != corev1.ConditionTrue
		}
	}
	return false
}
