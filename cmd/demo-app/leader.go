package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// leaderConfig makes the app a leader-elected controller, as operators
// are: it holds a Lease in its namespace, renewing it through the API
// server (a write, so through etcd's WAL), and exits when a renewal misses
// its deadline, as controller-runtime's managers do. Timings tuned for a
// fast failover lose the lease whenever the control plane slows; timings
// sized for a slow one ride it out.
type leaderConfig struct {
	lease                        string
	leaseDuration, renewDeadline time.Duration
	retryPeriod                  time.Duration
}

// validate names the flag at fault, with client-go's own rule.
func (c leaderConfig) validate() error {
	switch {
	case c.leaseDuration <= c.renewDeadline:
		return fmt.Errorf("--lease-duration %s: must be more than --renew-deadline %s", c.leaseDuration, c.renewDeadline)
	case float64(c.renewDeadline) <= leaderelection.JitterFactor*float64(c.retryPeriod):
		return fmt.Errorf("--renew-deadline %s: must be more than %.1f times --retry-period %s", c.renewDeadline, leaderelection.JitterFactor, c.retryPeriod)
	case c.retryPeriod <= 0:
		return fmt.Errorf("--retry-period %s: must be more than 0", c.retryPeriod)
	}
	return nil
}

// namespace is the pod's, from the downward API or its service account.
func podNamespace() (string, error) {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns, nil
	}
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return "", fmt.Errorf("--leader-elect needs the pod's namespace: set POD_NAMESPACE or mount a service account token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// lead runs the election until the lease is lost, then exits the process:
// a controller that may no longer be the leader must stop acting at once.
func (c leaderConfig) lead(ctx context.Context, onLeading func(bool)) error {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return fmt.Errorf("--leader-elect: %w", err)
	}
	ns, err := podNamespace()
	if err != nil {
		return err
	}
	// A restarted container must wait out the lease it held, as a real
	// operator's does: its identity is new each time, as
	// controller-runtime's hostname_UUID is.
	host, _ := os.Hostname()
	id := host + "_" + string(uuid.NewUUID())
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: ns, Name: c.lease},
		Client:     kubernetes.NewForConfigOrDie(cfg).CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock, LeaseDuration: c.leaseDuration, RenewDeadline: c.renewDeadline, RetryPeriod: c.retryPeriod,
		ReleaseOnCancel: true, Name: c.lease,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {
				log.Printf("leading: lease %s/%s held by %s", ns, c.lease, id)
				onLeading(true)
			},
			OnStoppedLeading: func() {
				onLeading(false)
				if ctx.Err() != nil {
					log.Printf("released lease %s/%s on shutdown", ns, c.lease)
					return
				}
				log.Printf("lost lease %s/%s: a renewal missed its %s deadline; exiting", ns, c.lease, c.renewDeadline)
				os.Exit(1)
			},
		},
	})
	if err != nil {
		return fmt.Errorf("--leader-elect: %w", err)
	}
	go le.Run(ctx)
	return nil
}
