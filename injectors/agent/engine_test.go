package agent

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"faultline.dev/faultline/injectors"
	"faultline.dev/faultline/injectors/ledger"
)

// node is a fake node: the set of faults in place, and a log of calls.
type node struct {
	mu       sync.Mutex
	in       map[string]bool
	calls    []string
	failNext error
}

type fakeFault struct {
	id string
	n  *node
}

func (f fakeFault) Inject(context.Context) error {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	f.n.calls = append(f.n.calls, "inject "+f.id)
	if err := f.n.failNext; err != nil {
		f.n.failNext = nil
		f.n.in[f.id] = true // half made
		return err
	}
	f.n.in[f.id] = true
	return nil
}

func (f fakeFault) Recover(context.Context) error {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	f.n.calls = append(f.n.calls, "recover "+f.id)
	delete(f.n.in, f.id)
	return nil
}

func (f fakeFault) Verify(context.Context) (bool, error) {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	return f.n.in[f.id], nil
}

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// engine builds an engine with a fake clock at t0 over dir's ledger.
func engine(t *testing.T, dir string, n *node, clk *clocktesting.FakeClock) *Engine {
	t.Helper()
	l, err := ledger.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &Engine{Ledger: l, Clock: clk, Factories: map[string]injectors.Factory{
		"Fake": func(id string, _ json.RawMessage) (injectors.Fault, error) { return fakeFault{id: id, n: n}, nil },
	}}
}

func fault(id string, start, end time.Duration) Desired {
	return Desired{ID: id, Type: "Fake", Params: json.RawMessage(`{}`), StartAt: t0.Add(start), Deadline: t0.Add(end)}
}

func TestReconcile(t *testing.T) {
	tests := map[string]struct {
		desired   []Desired
		at        time.Duration // clock offset from t0 at reconcile
		wantIn    []string
		wantState map[string]ledger.State
		wantNext  time.Duration // from t0; -1 for none
	}{
		"a fault whose start has come is injected": {
			desired: []Desired{fault("a", 0, time.Minute)}, wantIn: []string{"a"},
			wantState: map[string]ledger.State{"a": ledger.Injected}, wantNext: time.Minute,
		},
		"a fault whose start has not come waits": {
			desired: []Desired{fault("a", 10*time.Second, time.Minute)}, wantNext: 10 * time.Second,
			wantState: map[string]ledger.State{},
		},
		"a fault past its deadline is never injected": {
			desired: []Desired{fault("a", 0, time.Minute)}, at: 2 * time.Minute,
			wantState: map[string]ledger.State{"a": ledger.Recovered}, wantNext: -1,
		},
		"a fault asked to recover before injection is recorded so it never is": {
			desired:   []Desired{{ID: "a", Type: "Fake", StartAt: t0, Deadline: t0.Add(time.Minute), Recover: true}},
			wantState: map[string]ledger.State{"a": ledger.Recovered}, wantNext: -1,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			n := &node{in: map[string]bool{}}
			clk := clocktesting.NewFakeClock(t0.Add(tc.at))
			e := engine(t, t.TempDir(), n, clk)
			next, err := e.Reconcile(context.Background(), tc.desired)
			if err != nil {
				t.Fatal(err)
			}
			if len(n.in) != len(tc.wantIn) {
				t.Errorf("in place: %v, want %v", n.in, tc.wantIn)
			}
			for _, id := range tc.wantIn {
				if !n.in[id] {
					t.Errorf("%s not in place", id)
				}
			}
			for id, st := range tc.wantState {
				if en, ok := e.Ledger.Get(id); !ok || en.State != st {
					t.Errorf("ledger %s: %+v, want state %s", id, en, st)
				}
			}
			if tc.wantNext < 0 && !next.IsZero() || tc.wantNext >= 0 && !next.Equal(t0.Add(tc.wantNext)) {
				t.Errorf("next = %v, want t0+%v", next, tc.wantNext)
			}
		})
	}
}

func TestTheDeadlineIsEnforcedFromTheLedgerAlone(t *testing.T) {
	n := &node{in: map[string]bool{}}
	clk := clocktesting.NewFakeClock(t0)
	e := engine(t, t.TempDir(), n, clk)
	if _, err := e.Reconcile(context.Background(), []Desired{fault("a", 0, 90*time.Second)}); err != nil {
		t.Fatal(err)
	}
	// No more reconciles: the API server is out of reach.
	clk.SetTime(t0.Add(89 * time.Second))
	if _, err := e.EnforceDeadlines(context.Background()); err != nil || !n.in["a"] {
		t.Fatalf("recovered before the deadline (err %v)", err)
	}
	clk.SetTime(t0.Add(90 * time.Second))
	next, err := e.EnforceDeadlines(context.Background())
	if err != nil || n.in["a"] || !next.IsZero() {
		t.Fatalf("at the deadline: in place %v, next %v, err %v; want recovered", n.in, next, err)
	}
}

func TestUnassignedFaultsAreRecovered(t *testing.T) {
	n := &node{in: map[string]bool{}}
	e := engine(t, t.TempDir(), n, clocktesting.NewFakeClock(t0))
	ctx := context.Background()
	if _, err := e.Reconcile(ctx, []Desired{fault("a", 0, time.Hour), fault("b", 0, time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reconcile(ctx, []Desired{fault("b", 0, time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if n.in["a"] || !n.in["b"] {
		t.Errorf("in place %v, want only b", n.in)
	}
	// A recovered fault is never injected again, even if it reappears.
	if _, err := e.Reconcile(ctx, []Desired{fault("a", 0, time.Hour), fault("b", 0, time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if n.in["a"] {
		t.Error("a recovered fault was injected again")
	}
}

func TestAFailedInjectionIsUndone(t *testing.T) {
	n := &node{in: map[string]bool{}, failNext: errors.New("boom")}
	e := engine(t, t.TempDir(), n, clocktesting.NewFakeClock(t0))
	_, err := e.Reconcile(context.Background(), []Desired{fault("a", 0, time.Hour)})
	if err == nil {
		t.Fatal("want the injection error")
	}
	if n.in["a"] {
		t.Error("the half-made fault was left in place")
	}
	if en, _ := e.Ledger.Get("a"); en.State != ledger.Recovered || en.Error == "" {
		t.Errorf("ledger entry %+v, want Recovered with the error kept", en)
	}
}

func TestARestartedAgentResumesOrRecovers(t *testing.T) {
	dir := t.TempDir()
	n := &node{in: map[string]bool{}}
	clk := clocktesting.NewFakeClock(t0)
	first := engine(t, dir, n, clk)
	if _, err := first.Reconcile(context.Background(), []Desired{fault("short", 0, time.Minute), fault("long", 0, time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// A crash mid-injection: the ledger says Injecting, the node has nothing.
	en, _ := first.Ledger.Get("long")
	en.State = ledger.Injecting
	if err := first.Ledger.Put(en); err != nil {
		t.Fatal(err)
	}
	delete(n.in, "long")
	first.Ledger.Close()

	clk.SetTime(t0.Add(2 * time.Minute))
	second := engine(t, dir, n, clk)
	if err := second.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n.in["short"] {
		t.Error("the fault past its deadline was not recovered on restart")
	}
	if !n.in["long"] {
		t.Error("the fault caught mid-injection was not put back")
	}
	if en, _ := second.Ledger.Get("long"); en.State != ledger.Injected {
		t.Errorf("long: %s, want Injected", en.State)
	}
}

func TestARestartedAgentNotesAFaultItFindsGoneAndPutsItBack(t *testing.T) {
	dir := t.TempDir()
	n := &node{in: map[string]bool{}}
	clk := clocktesting.NewFakeClock(t0)
	first := engine(t, dir, n, clk)
	if _, err := first.Reconcile(context.Background(), []Desired{fault("traced", 0, time.Hour), fault("kept", 0, time.Hour)}); err != nil {
		t.Fatal(err)
	}
	first.Ledger.Close()
	// The first agent dies: what it held in memory (a tracer) goes with it,
	// what it put in the kernel (a rule) stays.
	delete(n.in, "traced")

	second := engine(t, dir, n, clk)
	if err := second.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !n.in["traced"] {
		t.Error("the fault found gone was not put back")
	}
	if en, _ := second.Ledger.Get("traced"); en.State != ledger.Injected || !strings.Contains(en.Note, "not in place after an agent restart") || en.InjectedAt == nil || !en.InjectedAt.Equal(t0) {
		t.Errorf("traced: state %s, note %q, injected at %v; want Injected, a note, and the first injection time", en.State, en.Note, en.InjectedAt)
	}
	if en, _ := second.Ledger.Get("kept"); en.Note != "" {
		t.Errorf("kept: note %q for a fault that was still in place", en.Note)
	}
}

func TestTheLedgerIsHeldByOneAgentAtATime(t *testing.T) {
	dir := t.TempDir()
	l, err := ledger.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := ledger.Open(dir); err == nil {
		t.Fatal("a second agent opened the same ledger")
	}
}

// calls is a log of the injections made by counting faults, as "ID params".
type calls struct {
	mu  sync.Mutex
	log []string
}

func (c *calls) add(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = append(c.log, s)
}

func (c *calls) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.log...)
}

// countingFault logs its injections with its parameters; onceFault is the
// same, acting at one instant (a signal).
type countingFault struct {
	id, params string
	c          *calls
}

func (f countingFault) Inject(context.Context) error         { f.c.add(f.id + " " + f.params); return nil }
func (f countingFault) Recover(context.Context) error        { return nil }
func (f countingFault) Verify(context.Context) (bool, error) { return true, nil }

type onceFault struct{ countingFault }

func (onceFault) Once() {}

var _ injectors.Once = onceFault{}

// countingEngine is an engine over dir's ledger whose families Hold and
// Once log their injections to c; params are JSON strings.
func countingEngine(t *testing.T, dir string, c *calls, clk *clocktesting.FakeClock) *Engine {
	t.Helper()
	e := engine(t, dir, &node{in: map[string]bool{}}, clk)
	e.Factories["Hold"] = func(id string, raw json.RawMessage) (injectors.Fault, error) {
		var p string
		err := json.Unmarshal(raw, &p)
		return countingFault{id, p, c}, err
	}
	e.Factories["Once"] = func(id string, raw json.RawMessage) (injectors.Fault, error) {
		var p string
		err := json.Unmarshal(raw, &p)
		return onceFault{countingFault{id, p, c}}, err
	}
	return e
}

func entry(typ string, st ledger.State, params string, deadline time.Duration) ledger.Entry {
	en := ledger.Entry{ID: "a", Type: typ, Params: json.RawMessage(`"` + params + `"`), StartAt: t0, Deadline: t0.Add(deadline), State: st}
	if st == ledger.Injected {
		at := t0
		en.InjectedAt = &at
	}
	return en
}

func TestOnceFaultsAfterARestart(t *testing.T) {
	tests := map[string]struct {
		before    ledger.Entry  // what the crashed agent left in the ledger
		at        time.Duration // restart time, from t0
		wantCalls []string      // injections by the restarted agent
		wantState ledger.State
	}{
		"an injected Once fault is not injected again": {
			before: entry("Once", ledger.Injected, "pid-1", time.Hour), wantState: ledger.Injected,
		},
		"a Once fault caught mid-injection is retried once, on the target it recorded": {
			before: entry("Once", ledger.Injecting, "pid-1", time.Hour), wantCalls: []string{"a pid-1"}, wantState: ledger.Injected,
		},
		"an injected Once fault past its deadline is recovered, not injected": {
			before: entry("Once", ledger.Injected, "pid-1", time.Minute), at: 2 * time.Minute, wantState: ledger.Recovered,
		},
		"a Once fault caught mid-injection past its deadline is recovered, not injected": {
			before: entry("Once", ledger.Injecting, "pid-1", time.Minute), at: 2 * time.Minute, wantState: ledger.Recovered,
		},
		"an injected fault that holds something in place is still put back": {
			before: entry("Hold", ledger.Injected, "pid-1", time.Hour), wantCalls: []string{"a pid-1"}, wantState: ledger.Injected,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := ledger.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Put(tc.before); err != nil {
				t.Fatal(err)
			}
			l.Close()

			c := &calls{}
			clk := clocktesting.NewFakeClock(t0.Add(tc.at))
			e := countingEngine(t, dir, c, clk)
			ctx := context.Background()
			if err := e.Resume(ctx); err != nil {
				t.Fatal(err)
			}
			// The assignment is still there; its target now resolves to
			// another process (the restarted container's).
			d := Desired{ID: "a", Type: tc.before.Type, Params: json.RawMessage(`"pid-2"`), StartAt: t0, Deadline: tc.before.Deadline}
			if _, err := e.Reconcile(ctx, []Desired{d}); err != nil {
				t.Fatal(err)
			}
			if got := c.get(); !slices.Equal(got, tc.wantCalls) {
				t.Errorf("injections %q, want %q", got, tc.wantCalls)
			}
			en, _ := e.Ledger.Get("a")
			if en.State != tc.wantState {
				t.Fatalf("state %s, want %s (%+v)", en.State, tc.wantState, en)
			}
			if en.State == ledger.Injected {
				if en.InjectedAt == nil {
					t.Error("Injected with no injection time")
				}
				clk.SetTime(tc.before.Deadline)
				if _, err := e.EnforceDeadlines(ctx); err != nil {
					t.Fatal(err)
				}
				if en, _ := e.Ledger.Get("a"); en.State != ledger.Recovered {
					t.Errorf("at the deadline: %s, want Recovered", en.State)
				}
				if got := c.get(); !slices.Equal(got, tc.wantCalls) {
					t.Errorf("injections after the deadline %q, want %q", got, tc.wantCalls)
				}
			}
		})
	}
}

func TestOnceFaultsInReconcile(t *testing.T) {
	tests := map[string]struct {
		before    *ledger.Entry   // in the ledger before the reconciles, if any
		params    json.RawMessage // the desired fault's, as resolved now
		rounds    int
		wantCalls []string
	}{
		"an injected Once fault is not injected again by later reconciles": {
			params: json.RawMessage(`"pid-1"`), rounds: 3, wantCalls: []string{"a pid-1"},
		},
		"a Once fault caught mid-injection is retried on the target the ledger recorded, not the one resolved now": {
			before: ptr(entry("Once", ledger.Injecting, "pid-1", time.Hour)), params: json.RawMessage(`"pid-2"`), rounds: 2, wantCalls: []string{"a pid-1"},
		},
		"a Once fault caught mid-injection is retried even when its target cannot be resolved now": {
			before: ptr(entry("Once", ledger.Injecting, "pid-1", time.Hour)), rounds: 2, wantCalls: []string{"a pid-1"},
		},
		"an injected Once fault whose target cannot be resolved now stays injected": {
			before: ptr(entry("Once", ledger.Injected, "pid-1", time.Hour)), rounds: 2,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := &calls{}
			e := countingEngine(t, t.TempDir(), c, clocktesting.NewFakeClock(t0))
			if tc.before != nil {
				if err := e.Ledger.Put(*tc.before); err != nil {
					t.Fatal(err)
				}
			}
			d := Desired{ID: "a", Type: "Once", Params: tc.params, StartAt: t0, Deadline: t0.Add(time.Hour)}
			for range tc.rounds {
				if _, err := e.Reconcile(context.Background(), []Desired{d}); err != nil {
					t.Fatal(err)
				}
			}
			if got := c.get(); !slices.Equal(got, tc.wantCalls) {
				t.Errorf("injections %q, want %q", got, tc.wantCalls)
			}
			if en, _ := e.Ledger.Get("a"); en.State != ledger.Injected {
				t.Errorf("state %s, want Injected", en.State)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// boundedFault records the deadline it was bound to when injected.
type boundedFault struct {
	fakeFault
	until time.Time
}

func (f boundedFault) Until(d time.Time) injectors.Fault { f.until = d; return f }

func (f boundedFault) Inject(ctx context.Context) error {
	f.n.mu.Lock()
	f.n.calls = append(f.n.calls, "bound "+f.id+" until "+f.until.Format(time.RFC3339))
	f.n.mu.Unlock()
	return f.fakeFault.Inject(ctx)
}

// Every fault that can end by itself (the kernel's timeout, a stressor's
// clock) is bound to its deadline when injected (a restarted agent builds
// the faults it puts back the same way): it ends on time with no agent.
func TestAFaultThatCanEndByItselfIsBoundToItsDeadline(t *testing.T) {
	n := &node{in: map[string]bool{}}
	dir := t.TempDir()
	e := engine(t, dir, n, clocktesting.NewFakeClock(t0))
	e.Factories["Fake"] = func(id string, _ json.RawMessage) (injectors.Fault, error) {
		return boundedFault{fakeFault: fakeFault{id: id, n: n}}, nil
	}
	if _, err := e.Reconcile(context.Background(), []Desired{fault("a", 0, time.Minute)}); err != nil {
		t.Fatal(err)
	}
	want := "bound a until " + t0.Add(time.Minute).Format(time.RFC3339)
	if !slices.Contains(n.calls, want) {
		t.Errorf("calls %q, want %q", n.calls, want)
	}
}
