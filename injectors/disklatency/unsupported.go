//go:build !(linux && amd64)

package disklatency

import (
	"errors"
	"sync/atomic"
)

// Tracing is implemented for linux/amd64 only: elsewhere a fault is built
// and validated, but its injection fails.
var errUnsupported = errors.New("disk latency faults need linux/amd64")

var syscallNumbers = map[string]uint64{}

type tracer struct {
	p             Params
	seen, delayed atomic.Uint64
	ready         chan error
	done          chan struct{}
}

func startTracer(_ string, p Params, _ string) *tracer {
	t := &tracer{p: p, ready: make(chan error, 1), done: make(chan struct{})}
	t.ready <- errUnsupported
	close(t.done)
	return t
}

func (t *tracer) stop()                 {}
func (t *tracer) ended() bool           { return true }
func (t *tracer) result() (bool, error) { return false, errUnsupported }
