package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	cm "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	promclient "github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"faultline.dev/faultline/analyzers/evictions"
	"faultline.dev/faultline/analyzers/prometheus"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/schedule"
)

// Options are the controller's settings: its flags, and what tests give.
type Options struct {
	// Namespace is faultline's own.
	Namespace string
	// RecoveryTimeout bounds the wait for workloads to come back.
	RecoveryTimeout time.Duration
	// ReportGrace is how long past a deadline an agent may take to report.
	ReportGrace time.Duration
	// AgentNamespace holds the nodes' FaultAssignments (and their agents'
	// identities); v1alpha1.DefaultAgentNamespace when empty.
	AgentNamespace string
	// AgentRole, when set, gives each node's agent an identity of its own
	// in AgentNamespace.
	AgentRole string
	// Metrics is where the controllers' metrics go.
	Metrics promclient.Registerer
	// Clock is the controllers'; the real one when nil.
	Clock clock.Clock
}

func (o Options) agentNamespace() string {
	if o.AgentNamespace == "" {
		return v1alpha1.DefaultAgentNamespace
	}
	return o.AgentNamespace
}

// NewScheme holds every kind the controller reads or writes: Chaos Mesh's
// too, which it only reads and writes, never watches (their CRDs may be
// absent).
func NewScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, cm.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	return scheme, nil
}

// CacheOptions keep of pods only what the analyzers read, since the
// eviction analyzer watches every one, and add the agents' identities.
func CacheOptions(opts Options) cache.Options {
	// FaultAssignments are not narrowed to their namespace here: that
	// needs their kind served when the manager is made, before
	// syncInformers' retries, and a controller started beside a fresh CRD
	// would exit. Only the agents' namespace holds any.
	byObject := map[client.Object]cache.ByObject{&corev1.Pod{}: {Transform: evictions.Strip}}
	if opts.AgentRole != "" {
		maps.Copy(byObject, IdentityCache(opts.agentNamespace()))
	}
	return cache.Options{ByObject: byObject}
}

// Setup adds the Experiment and Schedule controllers, the analyzers and,
// with an agent role, the agents' identities, to a manager made with
// NewScheme and CacheOptions.
func Setup(ctx context.Context, mgr ctrl.Manager, cfg *rest.Config, opts Options) error {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if err := syncInformers(ctx, mgr); err != nil {
		return err
	}
	analysis := NewAnalysis()
	analysis.Clock = opts.Clock
	// prometheus.scrape.apiServer reads the API server's own /metrics with
	// the controller's credentials.
	if hc, err := rest.HTTPClientFor(cfg); err == nil {
		analysis.APIServer = &prometheus.Target{URL: strings.TrimSuffix(cfg.Host, "/") + "/metrics", Client: hc}
	}
	if err := analysis.Setup(ctx, mgr.GetCache()); err != nil {
		return fmt.Errorf("analyzers: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	r := &ExperimentReconciler{
		Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorderFor("faultline-controller"), //nolint:staticcheck // the new recorder is not on the Manager interface yet
		Clock: opts.Clock, Namespace: opts.Namespace, AgentNamespace: opts.agentNamespace(), Analysis: analysis, Metrics: NewMetrics(opts.Metrics),
		RecoveryTimeout: opts.RecoveryTimeout, ReportGrace: opts.ReportGrace, Discovery: disc,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return err
	}
	sr := &schedule.Reconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("faultline-schedule"), //nolint:staticcheck // as above
		Clock: opts.Clock, Metrics: schedule.NewMetrics(opts.Metrics),
	}
	if err := sr.SetupWithManager(mgr); err != nil {
		return err
	}
	if opts.AgentRole != "" {
		ir := &AgentIdentityReconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Namespace: opts.agentNamespace(), Role: opts.AgentRole}
		if err := ir.SetupWithManager(mgr); err != nil {
			return err
		}
	}
	return nil
}

// syncInformers asks for every informer the controller reads now, so that
// they sync before the first experiment rather than lazily in its way.
// CRDs installed a moment ago may not be served yet: each is retried a
// while.
func syncInformers(ctx context.Context, mgr ctrl.Manager) error {
	for _, obj := range []client.Object{&appsv1.ReplicaSet{}, &appsv1.Deployment{}, &discoveryv1.EndpointSlice{}, &policyv1.PodDisruptionBudget{}, &corev1.Namespace{}, &v1alpha1.FaultAssignment{}, &v1alpha1.Schedule{}} {
		var err error
		for try := 0; try < 30; try++ {
			if _, err = mgr.GetCache().GetInformer(ctx, obj); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
		if err != nil {
			return errors.Join(errors.New("informer (are faultline's CRDs installed?)"), err)
		}
	}
	return nil
}
