// Package agent is the node agent's core: it holds the faults this node
// must carry, injects them when their start comes, and recovers them at
// their absolute deadline by its own clock, whether or not the node can
// reach the API server. Every step is written to the ledger first, so a
// restarted agent recovers or resumes whatever a crashed one left.
//
// It works on plain Desired values; turning FaultAssignments into them is
// the caller's business.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"faultline.dev/faultline/injectors"
	"faultline.dev/faultline/injectors/ledger"
)

// Desired is one fault this node must hold. Params nil means it is still
// assigned but cannot be resolved now: it is neither injected nor, if
// already in place, recovered before its deadline.
type Desired struct {
	ID       string
	Type     string
	Params   json.RawMessage
	StartAt  time.Time
	Deadline time.Time
	// Recover asks for recovery now, before the deadline.
	Recover bool
}

// Engine drives the injectors of one node.
type Engine struct {
	Ledger    *ledger.Ledger
	Factories map[string]injectors.Factory
	Clock     clock.Clock

	mu sync.Mutex // one reconcile at a time
}

func (e *Engine) fault(en ledger.Entry) (injectors.Fault, error) {
	f, ok := e.Factories[en.Type]
	if !ok {
		return nil, fmt.Errorf("type %q: this agent knows no such fault family", en.Type)
	}
	fault, err := f(en.ID, en.Params)
	if b, ok := fault.(injectors.Bounded); ok && err == nil && !en.Deadline.IsZero() {
		fault = b.Until(en.Deadline)
	}
	return fault, err
}

func (e *Engine) put(en ledger.Entry) error {
	if err := e.Ledger.Put(en); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

func (e *Engine) now() *time.Time { t := e.Clock.Now(); return &t }

// Reconcile brings the node to the desired faults: it injects the ones
// whose start has come, and recovers the ones past their deadline, asked to
// recover, or no longer desired. It returns when it must run next.
func (e *Engine) Reconcile(ctx context.Context, desired []Desired) (time.Time, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.Clock.Now()
	var errs []error
	want := map[string]Desired{}
	for _, d := range desired {
		want[d.ID] = d
	}
	// Faults the ledger holds that nobody wants any more.
	for _, en := range e.Ledger.List() {
		if _, ok := want[en.ID]; !ok && en.Active() {
			errs = append(errs, e.recover(ctx, en, "no longer assigned"))
		}
	}
	for _, d := range desired {
		en, known := e.Ledger.Get(d.ID)
		switch {
		case known && en.State == ledger.Recovered:
			// Done; a fault is never injected twice.
		case d.Recover || !now.Before(d.Deadline):
			if known {
				errs = append(errs, e.recover(ctx, en, "deadline or recovery request"))
			} else {
				// Never injected: record it as recovered so it never is.
				errs = append(errs, e.put(ledger.Entry{ID: d.ID, Type: d.Type, Params: d.Params, StartAt: d.StartAt, Deadline: d.Deadline, State: ledger.Recovered, RecoveredAt: e.now(), Note: "never injected"}))
			}
		case now.Before(d.StartAt):
			// Not yet.
		case known && en.State == ledger.Injecting && e.once(en):
			// A Once fault cut short mid-injection is retried on the target
			// the ledger recorded before the first attempt (say, the process
			// that may have got a signal), never on whatever the assignment
			// resolves to now (the process of the restarted container).
			errs = append(errs, e.inject(ctx, en))
		case d.Params == nil:
			// Not resolvable now.
		case !known || en.State == ledger.Injecting:
			errs = append(errs, e.inject(ctx, ledger.Entry{ID: d.ID, Type: d.Type, Params: d.Params, StartAt: d.StartAt, Deadline: d.Deadline}))
		}
	}
	return e.next(desired), errors.Join(errs...)
}

// inject writes the entry as Injecting, then injects. A failed injection is
// recovered at once, since it may have half-happened.
func (e *Engine) inject(ctx context.Context, en ledger.Entry) error {
	en.State = ledger.Injecting
	if err := e.put(en); err != nil {
		return err
	}
	f, err := e.fault(en)
	if err == nil {
		err = f.Inject(ctx)
	}
	if err != nil {
		en.State, en.Error = ledger.Failed, err.Error()
		if perr := e.put(en); perr != nil {
			return perr
		}
		return errors.Join(fmt.Errorf("inject %s: %w", en.ID, err), e.recover(ctx, en, "failed injection"))
	}
	// A fault put back after a restart keeps its first injection time.
	if en.InjectedAt == nil {
		en.InjectedAt = e.now()
	}
	en.State, en.Error = ledger.Injected, ""
	return e.put(en)
}

func (e *Engine) recover(ctx context.Context, en ledger.Entry, why string) error {
	f, err := e.fault(en)
	if err == nil {
		// The last word on the effect, before recovery removes what tells it.
		if r, ok := f.(injectors.Reporter); ok {
			if eff := r.Effect(ctx); eff != "" {
				en.Effect = eff
			}
		}
		err = f.Recover(ctx)
	}
	if err != nil {
		en.Error = fmt.Sprintf("recover (%s): %v", why, err)
		if perr := e.put(en); perr != nil {
			return perr
		}
		return fmt.Errorf("recover %s: %w", en.ID, err)
	}
	en.State, en.RecoveredAt = ledger.Recovered, e.now()
	if en.Note == "" {
		en.Note = why
	}
	return e.put(en)
}

// next is the earliest future start or deadline among active faults.
func (e *Engine) next(desired []Desired) time.Time {
	now := e.Clock.Now()
	var times []time.Time
	for _, d := range desired {
		if d.StartAt.After(now) {
			times = append(times, d.StartAt)
		}
	}
	for _, en := range e.Ledger.List() {
		if en.Active() && en.Deadline.After(now) {
			times = append(times, en.Deadline)
		}
	}
	if len(times) == 0 {
		return time.Time{}
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	return times[0]
}

// EnforceDeadlines recovers every fault of the ledger whose deadline has
// passed. It needs nothing but the ledger and the clock: this is what keeps
// a node that lost its network on time.
func (e *Engine) EnforceDeadlines(ctx context.Context) (time.Time, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.Clock.Now()
	var errs []error
	next := time.Time{}
	for _, en := range e.Ledger.List() {
		if !en.Active() {
			continue
		}
		if !now.Before(en.Deadline) {
			errs = append(errs, e.recover(ctx, en, "deadline"))
		} else if next.IsZero() || en.Deadline.Before(next) {
			next = en.Deadline
		}
	}
	return next, errors.Join(errs...)
}

// Resume is called once when the agent starts: faults past their deadline
// are recovered, and the others are put back in place (idempotently: a
// crash may have come between the ledger write and the injection).
//
// A Once fault (injectors.Once) that the ledger records as Injected has
// acted and holds nothing in place: it is not injected again, and stays
// Injected until its deadline or recovery. One caught Injecting is retried,
// its Inject telling whether the first attempt acted (a signal's target
// that already exited is not signalled again). The one double action left
// is a crash in the instant between the act (kill(2)) and the ledger's
// write of Injected, when the act's target survived it (a process still
// shutting down on SIGTERM is signalled a second time).
func (e *Engine) Resume(ctx context.Context) error {
	if _, err := e.EnforceDeadlines(ctx); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for _, en := range e.Ledger.List() {
		switch {
		case en.State == ledger.Injected && e.once(en):
			// Acted already; nothing to put back.
		case en.State == ledger.Injected:
			// What a fault holds only in the agent's memory, such as a
			// tracer, went with the agent that died; the ledger tells
			// this one, which puts it back and says so.
			if f, err := e.fault(en); err == nil {
				if ok, verr := f.Verify(ctx); verr == nil && !ok {
					en.Note = "found not in place after an agent restart, injected again"
				}
			}
			errs = append(errs, e.inject(ctx, en))
		case en.State == ledger.Injecting:
			errs = append(errs, e.inject(ctx, en))
		case en.State == ledger.Failed:
			errs = append(errs, e.recover(ctx, en, "failed before the restart"))
		}
	}
	return errors.Join(errs...)
}

// Effect is what the fault's injector reports of its effect now, or what
// it reported last once the fault is recovered ("" when it tells nothing).
func (e *Engine) Effect(ctx context.Context, id string) string {
	en, ok := e.Ledger.Get(id)
	if !ok {
		return ""
	}
	if en.State != ledger.Injected {
		return en.Effect
	}
	f, err := e.fault(en)
	if err != nil {
		return en.Effect
	}
	if r, ok := f.(injectors.Reporter); ok {
		if eff := r.Effect(ctx); eff != "" {
			return eff
		}
	}
	return en.Effect
}

// once reports whether en's fault acts at one instant (injectors.Once). A
// fault that cannot be built is not: injecting it fails, and is recorded.
func (e *Engine) once(en ledger.Entry) bool {
	f, err := e.fault(en)
	if err != nil {
		return false
	}
	_, ok := f.(injectors.Once)
	return ok
}

// RunDeadlines enforces deadlines until ctx ends, waking at the earliest
// one or when poke fires (a new fault was injected).
func (e *Engine) RunDeadlines(ctx context.Context, poke <-chan struct{}, onErr func(error)) {
	for {
		next, err := e.EnforceDeadlines(ctx)
		if err != nil && onErr != nil {
			onErr(err)
		}
		wait := time.Minute // and retry failed recoveries
		if !next.IsZero() {
			if d := next.Sub(e.Clock.Now()); d < wait {
				wait = d
			}
		}
		if err != nil && wait > time.Second {
			wait = time.Second
		}
		t := e.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-poke:
			t.Stop()
		case <-t.C():
		}
	}
}
