package sandboxtest

import (
	"flag"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// peak counts tests inside a section and keeps the most seen at once.
type peak struct{ now, max atomic.Int32 }

func (p *peak) enter() {
	n := p.now.Add(1)
	for m := p.max.Load(); n > m && !p.max.CompareAndSwap(m, n); m = p.max.Load() {
	}
}

func (p *peak) leave() { p.now.Add(-1) }

func TestClaimsKeepTestsThatActOnAResourceApartAndLetSharersOverlap(t *testing.T) {
	const cp = ControlPlane + "-test"
	var sharers, onNode peak
	var overlap atomic.Bool
	hold := func(p *peak) {
		p.enter()
		time.Sleep(30 * time.Millisecond)
		p.leave()
	}
	t.Run("group", func(t *testing.T) {
		for range 3 {
			t.Run("shares the control plane", func(t *testing.T) {
				Parallel(t, Shared(cp))
				hold(&sharers)
			})
		}
		for range 2 {
			t.Run("faults the node", func(t *testing.T) {
				Parallel(t, Alone(Node("test-node")), Shared(cp))
				hold(&onNode)
			})
		}
		t.Run("slows the control plane", func(t *testing.T) {
			Parallel(t, Alone(cp))
			if sharers.now.Load()+onNode.now.Load() != 0 {
				overlap.Store(true)
			}
			time.Sleep(30 * time.Millisecond)
			if sharers.now.Load()+onNode.now.Load() != 0 {
				overlap.Store(true)
			}
		})
	})
	if overlap.Load() {
		t.Error("a test ran beside one that holds the control plane alone")
	}
	if onNode.max.Load() != 1 {
		t.Errorf("%d tests held the node at once, want 1", onNode.max.Load())
	}
	// With room for all six at once (make test runs -parallel 8), the
	// three that share must have overlapped.
	if p, _ := strconv.Atoi(flag.Lookup("test.parallel").Value.String()); p >= 6 && sharers.max.Load() < 2 {
		t.Errorf("tests that share the control plane never ran side by side (at most %d at once)", sharers.max.Load())
	}
}
