package nodeagent

import (
	"context"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/injectors/agent"
)

// RunOptions are one node's agent, as faultline-agent runs it.
type RunOptions struct {
	Node string
	// Namespace holds the node's FaultAssignment (and its identity).
	Namespace string
	// Identity makes the agent act as its node's own ServiceAccount in
	// Namespace (see Identity); false: with cfg's credentials.
	Identity bool
	Scheme   *runtime.Scheme
	// MetricsAddr serves the manager's metrics; "0" serves none.
	MetricsAddr string
	Engine      *agent.Engine
	Poke        chan struct{}
	Env         NodeEnv
}

// Run watches the node's FaultAssignment and reconciles it until ctx ends
// or the API server cannot be reached at start.
func Run(ctx context.Context, cfg *rest.Config, o RunOptions) error {
	if o.Identity {
		var err error
		if cfg, err = Identity(cfg, o.Namespace, o.Node); err != nil {
			return err
		}
	}
	// The node's one FaultAssignment is named after it; RBAC allows a list
	// or watch of it by name only with this field selector.
	mine := fields.OneTermEqualSelector("metadata.name", o.Node)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  o.Scheme,
		Metrics: metricsserver.Options{BindAddress: o.MetricsAddr},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&v1alpha1.FaultAssignment{}: {Field: mine, Namespaces: map[string]cache.Config{o.Namespace: {}}},
		}},
	})
	if err != nil {
		return err
	}
	r := &Reconciler{Client: mgr.GetClient(), Namespace: o.Namespace, Node: o.Node, Env: o.Env, Engine: o.Engine, Poke: o.Poke}
	if err := r.SetupWithManager(mgr); err != nil {
		return err
	}
	return mgr.Start(ctx)
}
