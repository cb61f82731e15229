package sandbox

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
)

// ServePodTargets serves Prometheus HTTP service discovery for running pods
// annotated prometheus.io/scrape=true (and prometheus.io/port). Debian's
// Prometheus is built without Kubernetes discovery, so the sandbox runs
// this beside it as one more component.
func ServePodTargets(ctx context.Context, kubeconfig, listen string) error {
	cs, err := clientFor(kubeconfig)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(cs, 10*time.Minute)
	pods := factory.Core().V1().Pods().Lister()
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())

	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/targets", func(w http.ResponseWriter, r *http.Request) {
		all, err := pods.List(labels.Everything())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		groups := []group{}
		for _, p := range all {
			port := p.Annotations["prometheus.io/port"]
			if p.Annotations["prometheus.io/scrape"] != "true" || port == "" || p.Status.PodIP == "" || p.Status.Phase != corev1.PodRunning {
				continue
			}
			groups = append(groups, group{
				Targets: []string{net.JoinHostPort(p.Status.PodIP, port)},
				Labels:  map[string]string{"namespace": p.Namespace, "pod": p.Name, "node": p.Spec.NodeName},
			})
		}
		sort.Slice(groups, func(i, j int) bool { return groups[i].Targets[0] < groups[j].Targets[0] })
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(groups)
	})
	srv := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}
