// Package fleet runs many nodes' agents in one process, for benchmarks
// only: each node gets the real agent engine, ledger, node reconciler and
// identity flow (a token of its own ServiceAccount, a watch of its own
// FaultAssignment), with injectors that change nothing on the machine. So
// the controller's fan-out to a thousand nodes is measured against agents
// that speak to it exactly as real ones do.
package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/nodeagent"
	"faultline.dev/faultline/injectors"
	"faultline.dev/faultline/injectors/agent"
	"faultline.dev/faultline/injectors/ledger"
)

// Options are the fleet's nodes and how they act.
type Options struct {
	// Nodes are the Node objects the agents serve.
	Nodes []string
	// Namespace holds the FaultAssignments (and the identities).
	Namespace string
	// Identity: every agent acts as its node's own ServiceAccount, which
	// the controller makes in Namespace (as the chart's agents do). False:
	// every agent uses cfg's credentials.
	Identity bool
	// Dir holds one ledger directory per node.
	Dir string
	// OnError receives what an agent could not do (retried).
	OnError func(node string, err error)
}

// Fleet is the running agents.
type Fleet struct {
	wg sync.WaitGroup
	// held are the faults "in place", by node and fault ID: what a real
	// injector would have changed.
	mu   sync.Mutex
	held map[string]bool
}

// Start runs an agent for every node until ctx ends; Wait waits for them.
func Start(ctx context.Context, cfg *rest.Config, o Options) (*Fleet, error) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if o.OnError == nil {
		o.OnError = func(string, error) {}
	}
	f := &Fleet{held: map[string]bool{}}
	for _, node := range o.Nodes {
		l, err := ledger.Open(filepath.Join(o.Dir, node))
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", node, err)
		}
		factories := map[string]injectors.Factory{}
		for typ := range nodeagent.Factories {
			factories[typ] = func(id string, _ json.RawMessage) (injectors.Fault, error) {
				return &noop{fleet: f, key: node + "/" + id}, nil
			}
		}
		engine := &agent.Engine{Ledger: l, Clock: clock.RealClock{}, Factories: factories}
		poke := make(chan struct{}, 1)
		f.wg.Add(2)
		go func() {
			defer f.wg.Done()
			engine.RunDeadlines(ctx, poke, func(err error) { o.OnError(node, err) })
		}()
		go func() {
			defer f.wg.Done()
			defer l.Close()
			// As faultline-agent: keep trying while the identity is not
			// made yet or the API server does not answer.
			for ctx.Err() == nil {
				err := nodeagent.Run(ctx, cfg, nodeagent.RunOptions{Node: node, Namespace: o.Namespace, Identity: o.Identity, Scheme: scheme,
					MetricsAddr: "0", Engine: engine, Poke: poke, Env: nodeagent.NodeEnv{LedgerDir: filepath.Join(o.Dir, node)}})
				if ctx.Err() != nil {
					return
				}
				o.OnError(node, err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}()
	}
	return f, nil
}

// Wait waits until every agent has stopped (after ctx's end).
func (f *Fleet) Wait() { f.wg.Wait() }

// Held is how many faults the fleet's injectors hold now.
func (f *Fleet) Held() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.held)
}

// noop is an injector that changes nothing but remembers, so that Verify
// answers as a real one would.
type noop struct {
	fleet *Fleet
	key   string
}

func (n *noop) set(in bool) error {
	n.fleet.mu.Lock()
	defer n.fleet.mu.Unlock()
	if in {
		n.fleet.held[n.key] = true
	} else {
		delete(n.fleet.held, n.key)
	}
	return nil
}

func (n *noop) Inject(context.Context) error  { return n.set(true) }
func (n *noop) Recover(context.Context) error { return n.set(false) }
func (n *noop) Verify(context.Context) (bool, error) {
	n.fleet.mu.Lock()
	defer n.fleet.mu.Unlock()
	return n.fleet.held[n.key], nil
}
