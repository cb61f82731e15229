// Package analyzers holds what the analyzers share. Each analyzer measures
// one thing (nodes, evictions, recovery, ...) behind the same narrow shape,
// as Argo Rollouts' metric providers: it observes, and Measure returns named
// values that objectives read as ANALYZER.NAME. Analyzers know nothing of
// injection.
package analyzers

import (
	"time"

	toolscache "k8s.io/client-go/tools/cache"
)

// Provider is an analyzer.
type Provider interface {
	// Name is the prefix objectives use, such as "nodes".
	Name() string
	// Measure returns the measurements at now.
	Measure(now time.Time) map[string]any
}

// Informer is what analyzers need of an informer: client-go's shared
// informers and controller-runtime's cache informers both have it.
type Informer interface {
	AddEventHandler(handler toolscache.ResourceEventHandler) (toolscache.ResourceEventHandlerRegistration, error)
	RemoveEventHandler(handle toolscache.ResourceEventHandlerRegistration) error
}

// Handler adapts one observe function to add, update and delete events.
func Handler[T any](observe func(obj T, deleted bool)) toolscache.ResourceEventHandler {
	get := func(obj any) (T, bool) {
		if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		t, ok := obj.(T)
		return t, ok
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if t, ok := get(obj); ok {
				observe(t, false)
			}
		},
		UpdateFunc: func(_, obj any) {
			if t, ok := get(obj); ok {
				observe(t, false)
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := get(obj); ok {
				observe(t, true)
			}
		},
	}
}
