// Package injectors holds what every fault family shares: the small
// interface the node agent drives. Each family lives in its own package
// (netloss, ...) and knows nothing of Kubernetes objects.
package injectors

import (
	"context"
	"encoding/json"
	"time"
)

// Fault is one fault on one target of this node.
type Fault interface {
	// Inject puts the fault in place. It is idempotent: injecting a fault
	// that is already in place (a retry after a crash) changes nothing.
	Inject(ctx context.Context) error
	// Recover removes exactly what Inject added. It is idempotent and
	// succeeds when the fault, or its target, is already gone.
	Recover(ctx context.Context) error
	// Verify reports whether the fault is in place.
	Verify(ctx context.Context) (bool, error)
}

// Factory builds a fault of a family from its parameters, or refuses them
// with an error naming the bad field.
type Factory func(id string, params json.RawMessage) (Fault, error)

// Once is implemented by a fault that acts at one instant and holds nothing
// in place, such as a signal: once injected it cannot be undone, and an
// agent restarted after injecting it does not inject it again (it would act
// a second time). A Once fault caught mid-injection by a crash is still
// retried: its Inject must tell by itself whether the first attempt acted.
type Once interface {
	Fault
	Once()
}

// Reporter is implemented by a fault whose effect is worth telling, such as
// the memory a stressor holds or the OOM kill it forced. Effect is read
// while the fault is in place and once more just before it is recovered;
// it must be cheap and must not change the fault.
type Reporter interface {
	Fault
	Effect(ctx context.Context) string
}

// Bounded is implemented by a fault that can end by itself at its deadline
// with no faultline process alive: the kernel expires a network fault's
// rules, a stressor exits by its own clock. The agent binds every fault it
// injects to the fault's absolute deadline; it still recovers it then.
type Bounded interface {
	Fault
	// Until returns the fault bound to end by itself at deadline.
	Until(deadline time.Time) Fault
}
