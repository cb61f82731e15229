package memstress

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"faultline.dev/faultline/injectors/procfs"
)

// The stressors this agent started, by fault ID. The Fault the engine holds
// may be rebuilt from its parameters for each operation, so that a stressor
// is found by its ID; after an agent restart, by its state file.
var (
	opMu     sync.Mutex // one Inject, Recover or Sweep at a time
	regMu    sync.Mutex
	registry = map[string]*run{}
	// stateMu orders the read-modify-writes of state files between the
	// operations and the reapers.
	stateMu sync.Mutex
)

// run is a stressor this agent started.
type run struct {
	id, dir    string
	pid        int
	start      uint64
	stderr     *tail
	done       chan struct{} // closed once reaped and its outcome recorded
	mu         sync.Mutex
	recovering bool               // killed by Recover: no outcome to record
	status     syscall.WaitStatus // once done
}

func lookup(id string) *run {
	regMu.Lock()
	defer regMu.Unlock()
	return registry[id]
}

func register(r *run) {
	regMu.Lock()
	defer regMu.Unlock()
	registry[r.id] = r
}

func deregister(id string, r *run) {
	regMu.Lock()
	defer regMu.Unlock()
	if registry[id] == r {
		delete(registry, id)
	}
}

func (r *run) ended() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Inject makes the fault's cgroup and starts its stressor, and returns once
// the stressor is in its cgroup and recorded (pid and start time) in the
// state file, allowed to allocate: it ramps after Inject returns. It does
// nothing when the recorded stressor is alive, or when a push past the
// limit has had its OOM kill already (after an agent restart, say); a
// recorded stressor that is gone otherwise is replaced.
func (f *Fault) Inject(ctx context.Context) error {
	opMu.Lock()
	defer opMu.Unlock()
	p, dir := f.Params, f.Dir()
	if r := lookup(f.ID); r != nil && !r.ended() {
		if alive(r.pid, r.start) {
			return nil
		}
		// Exited, not reaped yet: its reaper records how.
		select {
		case <-r.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	stateMu.Lock()
	st, ok, err := readState(dir)
	stateMu.Unlock()
	if err != nil {
		return err
	}
	var h hierarchy
	if ok {
		h = hierarchy{Version: st.CgroupVersion, Root: st.CgroupRoot}
		if st.PID != 0 && alive(st.PID, st.StartTime) {
			return nil // recorded by an agent that lost track of it
		}
		a := assess(dir, st, h, nil)
		switch {
		case st.PushPastLimit && a.OOMKills > 0:
			return nil // its outcome is final: no second OOM
		case a.StressorOOMKilled:
			return fmt.Errorf("%w at %s: the target does not fit; not restarted", ErrStressorOOMKilled, mib(a.PeakBytes))
		case st.Outcome == OutcomeTargetGone:
			return fmt.Errorf("%w: %s", ErrTargetGone, st.OutcomeDetail)
		}
	} else {
		if h, err = detectHierarchy(p.CgroupRoot); err != nil {
			return err
		}
		st = State{ID: f.ID, Mode: p.Mode, CgroupVersion: h.Version, CgroupRoot: h.Root, Cgroup: ownCgroup(f.ID, p), Watch: p.Cgroup, PushPastLimit: p.PushPastLimit, TargetBytes: p.TargetBytes}
		if err := f.watchExists(h); err != nil {
			return err
		}
		if st.OOMKillsBefore, err = h.oomKills(st.Watch); err != nil {
			return fmt.Errorf("counting the OOM kills in %s: %w", h.dir(st.Watch), err)
		}
		if _, err := os.Stat(p.StateDir); errors.Is(err, fs.ErrNotExist) {
			st.MadeStateDir = true
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("stateDir: %w", err)
		}
		// Recorded before the cgroup is made: Recover and Sweep find all
		// that follows from it.
		if err := f.putState(st); err != nil {
			return err
		}
	}
	if err := f.watchExists(h); err != nil {
		return err
	}
	var limit, maxBytes int64
	switch p.Mode {
	case ModeNode:
		limit = p.TargetBytes + headroom(p.TargetBytes)
	case ModeContainer:
		if ok, err := h.useHierarchy(st.Watch); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("cgroup: %s has memory.use_hierarchy 0: a child cgroup's memory would not count against its limit", h.dir(st.Watch))
		}
		if p.PushPastLimit {
			l, ok, err := h.effectiveLimit(st.Watch)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("pushPastLimit: cgroup %s has no memory limit (nor has any of its parents): pushing past it would exhaust the node", h.dir(st.Watch))
			}
			// The kernel stops it at the limit; this bounds it even if the
			// limit is raised meanwhile.
			maxBytes = int64(min(l, MaxTargetBytes)) + 64<<20
			maxBytes = (max(maxBytes, p.TargetBytes) + pageSize - 1) / pageSize * pageSize
		}
	}
	if err := h.create(st.Cgroup, limit); err != nil {
		return fmt.Errorf("making cgroup %s: %w", h.dir(st.Cgroup), err)
	}
	return f.start(ctx, st, maxBytes)
}

var pageSize = int64(os.Getpagesize())

// watchExists checks that the container's cgroup (node mode: the parent)
// is there.
func (f *Fault) watchExists(h hierarchy) error {
	if h.exists(f.Params.Cgroup) {
		return nil
	}
	if f.Params.Mode == ModeContainer {
		return fmt.Errorf("%w: no cgroup %s", ErrTargetGone, h.dir(f.Params.Cgroup))
	}
	return fmt.Errorf("cgroup: no cgroup %s", h.dir(f.Params.Cgroup))
}

func (f *Fault) putState(st State) error {
	stateMu.Lock()
	defer stateMu.Unlock()
	return writeJSON(filepath.Join(f.Dir(), stateFile), st)
}

// start starts a stressor, waits until it is in its cgroup, records it,
// and lets it go.
func (f *Fault) start(ctx context.Context, st State, maxBytes int64) error {
	dir := f.Dir()
	_ = os.Remove(filepath.Join(dir, progressFile)) // a former stressor's
	args := stressorArgs(st, f.Params, dir, maxBytes, f.deadline)
	cmd := exec.Command(f.Params.Stressor, args...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	inR, inW, err := os.Pipe()
	if err != nil {
		return err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return err
	}
	r := &run{id: f.ID, dir: dir, stderr: &tail{}, done: make(chan struct{})}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, r.stderr
	err = startOnForkThread(cmd)
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return fmt.Errorf("starting the stressor %s: %w", f.Params.Stressor, err)
	}
	r.pid = cmd.Process.Pid
	ready := make(chan Progress, 1)
	go func() {
		// Read to the end: a stressor blocked on a full pipe would stop.
		sc := bufio.NewScanner(outR)
		first := true
		for sc.Scan() {
			if first {
				var p Progress
				_ = json.Unmarshal(sc.Bytes(), &p)
				ready <- p
				first = false
			}
		}
		outR.Close()
	}()
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		r.mu.Lock()
		r.status = cmd.ProcessState.Sys().(syscall.WaitStatus)
		r.mu.Unlock()
		close(exited)
		reap(r)
		inW.Close()
		close(r.done)
	}()
	fail := func(err error) error {
		r.mu.Lock()
		r.recovering = true // nothing to record: the injection failed
		r.mu.Unlock()
		_ = cmd.Process.Kill()
		<-r.done
		return err
	}
	var p Progress
	select {
	case p = <-ready:
	case <-exited:
		select {
		case p = <-ready:
		default:
		}
		if p.Phase != PhaseStarting {
			<-r.done
			return fmt.Errorf("the stressor exited (%s): %s", describe(r.status), r.stderr.String())
		}
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	if p.Phase != PhaseStarting || p.PID != r.pid {
		return fail(fmt.Errorf("the stressor %d said %+v, not that it started", r.pid, p))
	}
	r.mu.Lock() // its reaper may be reading it
	r.start = p.StartTime
	r.mu.Unlock()
	if s, err := procfs.ReadStat("/proc", r.pid); err != nil || s.Start != p.StartTime {
		return fail(fmt.Errorf("the stressor %d: start time %d in /proc, %d reported (%v)", r.pid, s.Start, p.StartTime, err))
	}
	st.PID, st.StartTime, st.Started = r.pid, p.StartTime, time.Now().UTC()
	st.Outcome, st.OutcomeDetail = "", ""
	if err := f.putState(st); err != nil {
		return fail(err)
	}
	register(r)
	// Should it have died meanwhile, its reaper records how.
	_, _ = inW.Write([]byte{'g'})
	return nil
}

// reap records how a stressor that ended by itself ended, and removes its
// cgroup, empty now, so that a dead container's cgroup can go.
func reap(r *run) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.recovering {
		return
	}
	stateMu.Lock()
	defer stateMu.Unlock()
	file := filepath.Join(r.dir, stateFile)
	var st State
	if err := readJSON(file, &st); err != nil || st.PID != r.pid || st.StartTime != r.start || st.Outcome != "" {
		return
	}
	h := hierarchy{Version: st.CgroupVersion, Root: st.CgroupRoot}
	a := assess(r.dir, st, h, &r.status)
	st.Outcome, st.OutcomeDetail = a.Outcome, a.Detail
	st.OOMKillsSeen, st.PeakBytes = a.OOMKills, a.PeakBytes
	if writeJSON(file, st) == nil {
		_ = h.remove(st.Cgroup, 2*time.Second)
	}
}

// Recover kills the fault's stressor (by its recorded pid and start time),
// waits until it is gone, and removes the fault's cgroup and state. It
// succeeds when they are gone already, the container's cgroup too.
func (f *Fault) Recover(ctx context.Context) error {
	opMu.Lock()
	defer opMu.Unlock()
	return recoverDir(ctx, f.ID, f.Dir())
}

func recoverDir(ctx context.Context, id, dir string) error {
	if r := lookup(id); r != nil {
		r.mu.Lock()
		r.recovering = true
		r.mu.Unlock()
		if err := killExact(r.pid, r.start); err != nil {
			return fmt.Errorf("killing the stressor %d: %w", r.pid, err)
		}
		select {
		case <-r.done:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the stressor %d to end: %w", r.pid, ctx.Err())
		}
		deregister(id, r)
	}
	stateMu.Lock()
	st, ok, err := readState(dir)
	stateMu.Unlock()
	if err != nil {
		return err
	}
	if ok {
		if st.PID != 0 {
			if err := killExact(st.PID, st.StartTime); err != nil {
				return fmt.Errorf("killing the stressor %d: %w", st.PID, err)
			}
			if err := waitGone(ctx, st.PID, st.StartTime); err != nil {
				return err
			}
		}
		h := hierarchy{Version: st.CgroupVersion, Root: st.CgroupRoot}
		wait := 5 * time.Second
		if d, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(d))
		}
		if err := h.remove(st.Cgroup, wait); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if ok && st.MadeStateDir {
		_ = os.Remove(filepath.Dir(dir)) // only if empty: other faults' may be there
	}
	return nil
}

// Verify reports whether the fault is in place: its recorded stressor is
// alive, or, pushing past the limit, it has had its OOM kill. A container
// that is gone is reported as an error wrapping ErrTargetGone.
func (f *Fault) Verify(context.Context) (bool, error) {
	if r := lookup(f.ID); r != nil && !r.ended() && alive(r.pid, r.start) {
		return true, nil
	}
	stateMu.Lock()
	st, ok, err := readState(f.Dir())
	stateMu.Unlock()
	if err != nil || !ok {
		return false, err
	}
	if st.PID != 0 && alive(st.PID, st.StartTime) {
		return true, nil
	}
	h := hierarchy{Version: st.CgroupVersion, Root: st.CgroupRoot}
	a := assess(f.Dir(), st, h, nil)
	switch {
	case st.PushPastLimit && a.OOMKills > 0:
		return true, nil
	case st.Mode == ModeContainer && !h.exists(st.Watch):
		return false, fmt.Errorf("%w: no cgroup %s", ErrTargetGone, h.dir(st.Watch))
	case st.Outcome == OutcomeTargetGone:
		return false, fmt.Errorf("%w: %s", ErrTargetGone, st.OutcomeDetail)
	}
	return false, nil
}

// Status reports the stressor's state; a fault not injected (or recovered)
// has Injected false.
func (f *Fault) Status() (Status, error) {
	stateMu.Lock()
	st, ok, err := readState(f.Dir())
	stateMu.Unlock()
	if err != nil || !ok {
		return Status{TargetBytes: f.Params.TargetBytes, Mode: f.Params.Mode, PushPastLimit: f.Params.PushPastLimit}, err
	}
	h := hierarchy{Version: st.CgroupVersion, Root: st.CgroupRoot}
	var ws *syscall.WaitStatus
	if r := lookup(f.ID); r != nil && r.pid == st.PID && r.ended() {
		ws = &r.status
	}
	return assess(f.Dir(), st, h, ws), nil
}

// assess tells what is known of the stressor of the fault whose directory
// is dir from its state, its progress, the cgroups' counters, and its wait
// status when this agent reaped it (nil otherwise).
func assess(dir string, st State, h hierarchy, ws *syscall.WaitStatus) Status {
	a := Status{Injected: true, Mode: st.Mode, PushPastLimit: st.PushPastLimit, PID: st.PID, TargetBytes: st.TargetBytes, Outcome: st.Outcome, Detail: st.OutcomeDetail}
	a.Alive = st.PID != 0 && alive(st.PID, st.StartTime)
	prog, progOK := readProgress(dir)
	if progOK && prog.PID == st.PID && prog.StartTime == st.StartTime {
		a.Phase, a.ResidentBytes, a.TouchedBytes = prog.Phase, prog.ResidentBytes, prog.TouchedBytes
		a.OOMKills = max(a.OOMKills, prog.OOMKills)
	} else {
		progOK = false
	}
	a.OOMKills = max(a.OOMKills, st.OOMKillsSeen)
	if n, err := h.oomKills(st.Watch); err == nil && n > st.OOMKillsBefore {
		a.OOMKills = max(a.OOMKills, n-st.OOMKillsBefore)
	}
	a.PeakBytes = st.PeakBytes
	if progOK {
		a.PeakBytes = max(a.PeakBytes, prog.PeakBytes)
	}
	own, ownErr := h.stat(st.Cgroup)
	if ownErr == nil && own.Known {
		a.CgroupUsageBytes = int64(own.Usage)
		a.PeakBytes = max(a.PeakBytes, int64(own.Peak))
	}
	if a.Alive || st.PID == 0 {
		if st.PID == 0 {
			a.Phase = PhaseStarting
		}
		return a
	}
	if st.Outcome != "" {
		// Recorded by the agent that reaped it.
		a.StressorOOMKilled = st.Outcome == OutcomeOOMKilled
		a.Phase = phaseOf(st.Outcome)
		return a
	}
	// Gone, and unrecorded: this agent reaps it now, or an agent that died
	// left it to be killed with it.
	released := progOK && prog.Phase == PhaseReleased
	killed := ws == nil || (ws.Signaled() && ws.Signal() == syscall.SIGKILL)
	switch {
	case released:
		a.Outcome, a.Detail = prog.ReleasedFor, prog.Reason
	case ownErr == nil && own.Known && killed:
		// Its own cgroup counts the OOM kills of its only process.
		if own.OOMKills > 0 {
			a.Outcome = OutcomeOOMKilled
		}
	case killed && a.OOMKills > 0:
		// Its cgroup counts nothing (cgroup v2 without the memory
		// controller): killed while the container's count rose.
		a.Outcome = OutcomeOOMKilled
	}
	if a.Outcome == "" {
		if ws != nil {
			a.Outcome, a.Detail = OutcomeExited, describe(*ws)
		} else {
			a.Detail = "no agent saw it end (killed with its agent?)"
		}
	}
	a.StressorOOMKilled = a.Outcome == OutcomeOOMKilled
	a.Phase = phaseOf(a.Outcome)
	return a
}

func phaseOf(outcome string) string {
	switch outcome {
	case OutcomeOOMKilled:
		return "oom-killed"
	case OutcomeReleased, OutcomeTargetGone:
		return PhaseReleased
	}
	return "gone"
}

func describe(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("killed by signal %d (%v)", int(ws.Signal()), ws.Signal())
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}

// alive reports whether process (pid, start) exists and has not exited: a
// different start time is another process that reused the pid.
func alive(pid int, start uint64) bool {
	st, err := procfs.ReadStat("/proc", pid)
	return err == nil && st.Start == start && st.State != 'Z'
}

// killExact sends SIGKILL to process (pid, start), if it is alive, and to
// no other: the pidfd pins the process while its start time is checked.
func killExact(pid int, start uint64) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if errors.Is(err, unix.ENOSYS) {
		// Before Linux 5.3: a pid reused between the check and the kill
		// is as unlikely as it gets.
		if !alive(pid, start) {
			return nil
		}
		return ignoreESRCH(unix.Kill(pid, unix.SIGKILL))
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if !alive(pid, start) {
		return nil
	}
	return ignoreESRCH(unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0))
}

func ignoreESRCH(err error) error {
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// waitGone waits until process (pid, start) has exited.
func waitGone(ctx context.Context, pid int, start uint64) error {
	for alive(pid, start) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the stressor %d to end: %w", pid, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// tail keeps the last bytes written to it: a stressor's stderr.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2048 {
		t.buf = t.buf[len(t.buf)-2048:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
