// Package disklatency makes a process's disk slow the way a slow disk does:
// it delays the process's fsync and fdatasync calls (or write, pwrite64,
// sync_file_range), the calls etcd's WAL waits on, at system call level
// with ptrace. No kernel module, no FUSE, no restart of the process; it
// knows nothing of Kubernetes.
//
// A tracer goroutine, locked to its OS thread, seizes every thread of the
// target (PTRACE_SEIZE, PTRACE_O_TRACECLONE for threads created later) and
// runs each from system call stop to system call stop (PTRACE_SYSCALL). At
// the entry of a matching call it may hold the thread, and resumes it when
// its delay is over, while the other threads run on. Recover detaches every
// thread, releasing held ones at once. If the tracer dies (the agent is
// killed), the kernel detaches the threads and the process runs on
// unharmed: a held call then simply proceeds.
//
// The cost: PTRACE_SYSCALL stops every thread at the entry and the exit of
// every system call, matching or not, and each stop is a round trip
// through the tracer. A call that costs 0.1 µs untraced costs tens of µs
// traced (see the tests' figures). A seccomp filter would stop only at the
// matching calls, but it would have to be installed by the target itself
// and can never be removed: after the detach, SECCOMP_RET_TRACE with no
// tracer fails the calls with ENOSYS. So there is none.
package disklatency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"faultline.dev/faultline/injectors"
	"faultline.dev/faultline/injectors/procfs"
)

// ErrTargetGone is returned (wrapped) when the target process has exited.
var ErrTargetGone = errors.New("the target process is gone")

// The tracers of this agent, by fault ID. The Fault the engine holds may be
// rebuilt from the same parameters at any time (its Factory is called for
// each operation), so that the tracer is found by its ID.
var (
	opMu     sync.Mutex // one Inject, Recover or Shutdown at a time
	regMu    sync.Mutex
	registry = map[string]*tracer{}
)

func lookup(id string) *tracer {
	regMu.Lock()
	defer regMu.Unlock()
	return registry[id]
}

func register(id string, t *tracer) {
	regMu.Lock()
	defer regMu.Unlock()
	registry[id] = t
}

// Fault delays one process's disk calls.
type Fault struct {
	ID     string
	Params Params

	procRoot string
}

var _ injectors.Fault = (*Fault)(nil)

// New is the family's injectors.Factory. Its parameters must be resolved
// (Resolve): pid and startTime set.
func New(id string, raw json.RawMessage) (injectors.Fault, error) {
	var p Params
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("disk latency parameters: %w", err)
	}
	return NewFault(id, p)
}

// NewFault builds a fault from resolved parameters.
func NewFault(id string, p Params) (*Fault, error) {
	p, err := p.Validate()
	if err != nil {
		return nil, err
	}
	return &Fault{ID: id, Params: p, procRoot: ProcRoot}, nil
}

func (f *Fault) target() string {
	return fmt.Sprintf("process %d (start time %d)", f.Params.PID, f.Params.StartTime)
}

// Inject starts tracing the process, and returns once every thread is
// seized and (within a bound of 2 s, for threads in a long uninterruptible
// sleep) delayed calls can start. Injecting a fault whose tracer runs
// already does nothing. The tracer outlives ctx: it runs until Recover,
// Shutdown, the target's exit, or this process's exit.
func (f *Fault) Inject(ctx context.Context) error {
	opMu.Lock()
	defer opMu.Unlock()
	p := f.Params
	// A tracer that has ended (recovered, or its process gone) is replaced.
	if t := lookup(f.ID); t != nil && !t.ended() {
		if t.p.PID != p.PID || t.p.StartTime != p.StartTime {
			return fmt.Errorf("fault %s traces process %d (start time %d) already, not %s", f.ID, t.p.PID, t.p.StartTime, f.target())
		}
		return nil
	}
	ok, err := alive(f.procRoot, p.PID, p.StartTime)
	if err != nil {
		return fmt.Errorf("%s: %w", f.target(), err)
	}
	if !ok {
		return fmt.Errorf("%s: %w", f.target(), ErrTargetGone)
	}
	if p.PID == selfPID() {
		return fmt.Errorf("pid: %d is the agent itself", p.PID)
	}
	if st, err := procfs.ReadStat(f.procRoot, p.PID); err == nil && st.PPID == selfPID() {
		// A process traced from its real parent's thread group has its
		// stops reported to every wait of that parent, which would swallow
		// some of them (os/exec's Wait, say) and leave threads stopped.
		return fmt.Errorf("pid: process %d is a child of the agent, which cannot trace its own children", p.PID)
	}
	regMu.Lock()
	for id, t := range registry {
		if t.p.PID == p.PID && t.p.StartTime == p.StartTime && !t.ended() {
			regMu.Unlock()
			return fmt.Errorf("%s is traced already, by fault %s: a process has one tracer", f.target(), id)
		}
	}
	regMu.Unlock()

	t := startTracer(f.ID, p, f.procRoot)
	register(f.ID, t)
	select {
	case err := <-t.ready:
		if err != nil {
			return fmt.Errorf("disk latency on %s: %w", f.target(), err)
		}
		return nil
	case <-ctx.Done():
		t.stop()
		return ctx.Err()
	}
}

// Recover detaches from every thread of the process, releasing the ones in
// a delay at once, and leaves it running. Recovering a fault that is not in
// place, or whose process is gone, succeeds.
func (f *Fault) Recover(ctx context.Context) error {
	opMu.Lock()
	defer opMu.Unlock()
	t := lookup(f.ID)
	if t == nil {
		// Nothing traced by this agent. One traced by an agent that died
		// was detached by the kernel.
		return nil
	}
	t.stop()
	select {
	case <-t.done:
	case <-ctx.Done():
		return fmt.Errorf("detaching from %s: %w", f.target(), ctx.Err())
	}
	// However the tracer ended (Recover, the target's exit, a failure), it
	// detached what it had attached first.
	return nil
}

// Verify reports whether the fault is in place: its tracer runs, and every
// thread of the process shows this process as its tracer (TracerPid in
// /proc/PID/task/TID/status). A process that is gone is reported as an
// error wrapping ErrTargetGone.
func (f *Fault) Verify(context.Context) (bool, error) {
	p := f.Params
	ok, err := alive(f.procRoot, p.PID, p.StartTime)
	if err != nil {
		return false, fmt.Errorf("%s: %w", f.target(), err)
	}
	if !ok {
		return false, fmt.Errorf("%s: %w", f.target(), ErrTargetGone)
	}
	t := lookup(f.ID)
	if t == nil || t.ended() {
		return false, nil
	}
	tr, err := tracers(f.procRoot, p.PID)
	if errors.Is(err, procfs.ErrNoProcess) {
		return false, fmt.Errorf("%s: %w", f.target(), ErrTargetGone)
	}
	if err != nil {
		return false, err
	}
	self := selfPID()
	for _, pid := range tr {
		if pid != self {
			return false, nil
		}
	}
	return true, nil
}

// Stats returns, for the fault with that ID, how many matching calls its
// tracer saw (after the path filter) and how many it delayed. They are kept
// after Recover; an unknown ID has none.
func Stats(id string) (seen, delayed uint64) {
	t := lookup(id)
	if t == nil {
		return 0, 0
	}
	return t.seen.Load(), t.delayed.Load()
}

// Shutdown detaches every tracer of this agent, as Recover would, for an
// agent that stops (on SIGTERM, say). An agent that exits without it leaves
// no harm either: the kernel detaches the tracees of a dead tracer.
func Shutdown(ctx context.Context) error {
	opMu.Lock()
	defer opMu.Unlock()
	regMu.Lock()
	var ts []*tracer
	for _, t := range registry {
		ts = append(ts, t)
	}
	regMu.Unlock()
	for _, t := range ts {
		t.stop()
	}
	for _, t := range ts {
		select {
		case <-t.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
