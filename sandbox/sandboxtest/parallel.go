package sandboxtest

import (
	"slices"
	"sort"
	"sync"
	"testing"
)

// Resource is a part of the shared sandbox that tests running side by side
// could disturb for each other. Most of a sandbox test's time is spent
// waiting on fault windows, so tests of one package run side by side when
// they claim what they use: alone what they act on, shared what they only
// need steady.
type Resource string

// ControlPlane is etcd, the API server and faultline's controller. A test
// that slows etcd, kills the controller or turns the kill switch on holds
// it alone; one that runs experiments, or whose measurements need a steady
// control plane (traffic through endpoints, latencies, timelines), shares
// it.
const ControlPlane Resource = "control-plane"

// Machine is this machine's CPUs and disk, which every sandbox test shares
// (Parallel claims it for each). A test whose own load would blur the
// others' measurements, and whose measurements their load would blur,
// holds it alone: slowing etcd by tracing every system call of it, then
// measuring its fsync p99 to the millisecond, is one.
const Machine Resource = "machine"

// Node is a node of the sandbox, held alone by a test whose fault acts on
// it or whose workload fills it.
func Node(name string) Resource { return Resource("node/" + name) }

// Claim is a resource and how it is held.
type Claim struct {
	resource Resource
	alone    bool
}

// Alone claims r for the test alone.
func Alone(r Resource) Claim { return Claim{r, true} }

// Shared claims r alongside other tests that share it.
func Shared(r Resource) Claim { return Claim{r, false} }

var (
	locksMu sync.Mutex
	locks   = map[Resource]*sync.RWMutex{}
)

func lockOf(r Resource) *sync.RWMutex {
	locksMu.Lock()
	defer locksMu.Unlock()
	if locks[r] == nil {
		locks[r] = &sync.RWMutex{}
	}
	return locks[r]
}

// Parallel runs the test beside the package's other parallel tests once it
// holds its claims, which it keeps to its end, and the machine, shared
// unless it claims it alone. Claims are taken in one order, so two tests
// never wait on each other. A test that must run with nothing beside it
// does not call Parallel: Go runs those first.
func Parallel(t *testing.T, claims ...Claim) {
	t.Helper()
	t.Parallel()
	Hold(t, claims...)
}

// Hold takes the claims, and the machine shared unless they claim it
// alone, for the rest of the test, without making it parallel.
func Hold(t *testing.T, claims ...Claim) {
	t.Helper()
	sorted := append([]Claim(nil), claims...)
	if !slices.ContainsFunc(sorted, func(c Claim) bool { return c.resource == Machine }) {
		sorted = append(sorted, Shared(Machine))
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].resource < sorted[j].resource })
	for i, c := range sorted {
		if i > 0 && sorted[i-1].resource == c.resource {
			t.Fatalf("resource %s claimed twice", c.resource)
		}
		l := lockOf(c.resource)
		if c.alone {
			l.Lock()
			t.Cleanup(l.Unlock)
		} else {
			l.RLock()
			t.Cleanup(l.RUnlock)
		}
	}
}
