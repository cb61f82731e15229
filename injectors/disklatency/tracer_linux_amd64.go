//go:build linux && amd64

package disklatency

import (
	"container/heap"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"faultline.dev/faultline/injectors/procfs"
)

const (
	// traceOptions are set on every thread of the target. No EXITKILL: when
	// the tracer dies, the kernel detaches its tracees and they run on.
	traceOptions = unix.PTRACE_O_TRACESYSGOOD | unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_TRACEEXEC
	// syscallStop is WSTOPSIG at a system call stop, with TRACESYSGOOD.
	syscallStop = unix.SIGTRAP | 0x80
	// livenessEvery is how often an idle tracer checks that its target
	// lives: its leader's exit is not reported to this process when it is
	// also the real parent and another thread reaps it first.
	livenessEvery = time.Second
	// readyWithin bounds how long Inject waits for every thread's first
	// stop (a thread in a long uninterruptible sleep stops only after it).
	readyWithin = 2 * time.Second
)

// thread is what the tracer knows of one thread of its target.
type thread struct {
	stopped   bool // in a ptrace-stop not yet ended: ptrace requests work on it
	held      bool // stopped at the entry of a call it delays
	initial   bool // seized by attach, first stop not yet seen
	inSyscall bool // between entry and exit stops, kept without PTRACE_GET_SYSCALL_INFO
}

// hold is one delayed call: its thread should resume at want, and is
// resumed at due, a little sooner (see tracer.early).
type hold struct {
	due, want time.Time
	tid       int
	th        *thread
}

// maxEarly bounds how much sooner than asked a hold may end.
const maxEarly = 20 * time.Millisecond

type holds []hold

func (h holds) Len() int           { return len(h) }
func (h holds) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h holds) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *holds) Push(x any)        { *h = append(*h, x.(hold)) }
func (h *holds) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// tracer traces one process from one goroutine locked to its OS thread:
// the kernel takes ptrace requests for a tracee only from the thread that
// attached it, so every request goes through that goroutine, and the
// others talk to it through channels and the waker.
type tracer struct {
	id       string
	p        Params
	procRoot string
	self     int

	match  [512]bool // by system call number
	delay  time.Duration
	jitter time.Duration
	share  float64

	// Shared with other goroutines.
	seen, delayed atomic.Uint64
	stopReq       chan struct{} // closed to ask for the detach
	stopOnce      sync.Once
	ready         chan error // the attach's outcome, once
	done          chan struct{}
	endMu         sync.Mutex
	endErr        error // why it ended, if not by Recover
	gone          bool  // it ended because the target is gone

	// The tracer goroutine's own.
	rng       *rand.Rand
	threads   map[int]*thread
	holds     holds
	w         *waker
	wmu       sync.Mutex // guards w for kicks from other goroutines
	alarm     *time.Timer
	alarmFor  time.Time
	stopping  bool
	regsMode  bool // no PTRACE_GET_SYSCALL_INFO (Linux before 5.3)
	readySent bool
	pending   int // threads seized by attach whose first stop is still to come
	readyBy   time.Time
	nextCheck time.Time
	// early is how much sooner than wanted holds are released: the timer,
	// the waker's stop, wait4 and the resume each wait for a CPU, and on a
	// busy machine that adds milliseconds to every delay. The tracer learns
	// its own lateness (an integral controller over release errors) so
	// that a call takes the delay asked for, not that plus the tracer's.
	early time.Duration
}

func newTracer(id string, p Params, procRoot string) *tracer {
	t := &tracer{
		id: id, p: p, procRoot: procRoot, self: os.Getpid(),
		delay:   time.Duration(p.DelayMs) * time.Millisecond,
		jitter:  time.Duration(p.JitterMs) * time.Millisecond,
		share:   p.Share(),
		stopReq: make(chan struct{}),
		ready:   make(chan error, 1),
		done:    make(chan struct{}),
		rng:     rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		threads: map[int]*thread{},
	}
	for _, s := range p.Syscalls {
		t.match[syscallNumbers[s]] = true
	}
	return t
}

func startTracer(id string, p Params, procRoot string) *tracer {
	t := newTracer(id, p, procRoot)
	go t.run()
	return t
}

// stop asks the tracer to detach and end; wait on done.
func (t *tracer) stop() {
	t.stopOnce.Do(func() { close(t.stopReq) })
	t.kick()
}

func (t *tracer) kick() {
	t.wmu.Lock()
	w := t.w
	t.wmu.Unlock()
	if w != nil {
		w.kick()
	}
}

func (t *tracer) ended() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// result says why an ended tracer ended: nil after a Recover.
func (t *tracer) result() (gone bool, err error) {
	t.endMu.Lock()
	defer t.endMu.Unlock()
	return t.gone, t.endErr
}

func (t *tracer) run() {
	// Never unlocked: when this goroutine returns its thread ends, and the
	// kernel detaches whatever it might still trace.
	runtime.LockOSThread()
	defer close(t.done)
	t.alarm = time.AfterFunc(time.Hour, t.kick)
	defer t.alarm.Stop()

	w, err := startWaker()
	if err != nil {
		t.finish(err)
		return
	}
	t.setWaker(w)
	defer t.closeWaker()

	now := time.Now()
	t.readyBy, t.nextCheck = now.Add(readyWithin), now.Add(livenessEvery)
	if err := t.attach(); err != nil {
		t.fail(err)
	}
	t.loop()
	t.finish(nil)
}

// setWaker replaces the waker (nil: none).
func (t *tracer) setWaker(w *waker) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.w = w
}

// closeWaker ends the waker, on the tracer thread.
func (t *tracer) closeWaker() {
	t.wmu.Lock()
	w := t.w
	t.w = nil
	t.wmu.Unlock()
	if w != nil {
		w.close()
	}
}

// finish records the outcome and answers an Inject still waiting.
func (t *tracer) finish(err error) {
	t.endMu.Lock()
	if t.endErr == nil {
		t.endErr = err
	}
	gone, endErr := t.gone, t.endErr
	t.endMu.Unlock()
	if !t.readySent {
		t.readySent = true
		switch {
		case gone:
			t.ready <- fmt.Errorf("process %d: %w", t.p.PID, ErrTargetGone)
		case endErr != nil:
			t.ready <- endErr
		default:
			t.ready <- errors.New("recovered before the injection completed")
		}
	}
}

// fail ends tracing on an error: every thread is detached first.
func (t *tracer) fail(err error) {
	t.endMu.Lock()
	if t.endErr == nil {
		t.endErr = err
	}
	t.endMu.Unlock()
	if !t.stopping {
		t.beginStop()
	}
}

// targetGone ends tracing of a process that exited: nothing is left to
// detach.
func (t *tracer) targetGone() {
	t.endMu.Lock()
	t.gone = true
	t.endMu.Unlock()
	t.stopping = true
	t.threads = map[int]*thread{}
	t.holds = nil
}

// attach seizes every thread of the target, leader first, and interrupts
// each so that the loop can set it going from stop to system call stop. A
// thread another thread creates meanwhile is caught by the next scan of
// /proc/PID/task, or, once its creator is seized, attached by the kernel
// (PTRACE_O_TRACECLONE) and announced by an event.
func (t *tracer) attach() error {
	pid := t.p.PID
	if err := ptraceSeize(pid, traceOptions); err != nil {
		return t.seizeError(pid, pid, err)
	}
	t.threads[pid] = &thread{initial: true}
	t.pending++
	// Seized: the process cannot be reaped behind our back any more, so a
	// start time read now tells for good whether it is the process meant.
	if ok, err := alive(t.procRoot, pid, t.p.StartTime); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("process %d: %w", pid, ErrTargetGone)
			t.targetGone()
		}
		return err
	}
	if err := ptraceInterrupt(pid); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("interrupt thread %d: %w", pid, err)
	}
	for {
		tids, err := procfs.TaskIDs(t.procRoot, pid)
		if errors.Is(err, procfs.ErrNoProcess) {
			t.targetGone()
			return fmt.Errorf("process %d: %w", pid, ErrTargetGone)
		}
		if err != nil {
			return err
		}
		added := 0
		for _, tid := range tids {
			if t.threads[tid] != nil {
				continue
			}
			err := ptraceSeize(tid, traceOptions)
			switch {
			case errors.Is(err, unix.ESRCH): // exited meanwhile
				continue
			case errors.Is(err, unix.EPERM):
				// Attached by the kernel already, as the clone of a
				// seized thread: its first stop is on its way.
				if tr, terr := tracerOf(t.procRoot, pid, tid); terr == nil && tr == t.self {
					t.threads[tid] = &thread{}
					added++
					continue
				}
				return t.seizeError(pid, tid, err)
			case err != nil:
				return t.seizeError(pid, tid, err)
			}
			t.threads[tid] = &thread{initial: true}
			t.pending++
			added++
			if err := ptraceInterrupt(tid); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("interrupt thread %d: %w", tid, err)
			}
		}
		if added == 0 {
			return nil
		}
	}
}

func (t *tracer) seizeError(pid, tid int, err error) error {
	if errors.Is(err, unix.ESRCH) && tid == pid {
		t.targetGone()
		return fmt.Errorf("process %d: %w", pid, ErrTargetGone)
	}
	if errors.Is(err, unix.EPERM) {
		if tr, terr := tracerOf(t.procRoot, pid, tid); terr == nil && tr != 0 && tr != t.self {
			return fmt.Errorf("thread %d of process %d is traced already, by process %d (%s)", tid, pid, tr, commOf(t.procRoot, tr))
		}
		return fmt.Errorf("ptrace thread %d of process %d: %w (the agent needs CAP_SYS_PTRACE, and a Yama ptrace_scope below 3)", tid, pid, err)
	}
	return fmt.Errorf("ptrace thread %d of process %d: %w", tid, pid, err)
}

func commOf(procRoot string, pid int) string {
	st, err := procfs.ReadStat(procRoot, pid)
	if err != nil {
		return "?"
	}
	return st.Comm
}

// loop serves stops until every thread is detached or gone.
//
// It blocks in wait4 for the next stop of any tracee. Held threads are not
// waited for in it: each delayed call is a hold in a heap, and a Go timer
// set to the earliest hold's end kicks the waker, whose stop ends the wait;
// the loop then resumes every thread whose hold is over. So one thread's
// delay never holds up the others, and a wake-up costs two stops of the
// waker, not a poll.
func (t *tracer) loop() {
	for {
		if t.stopping && len(t.threads) == 0 {
			return
		}
		now := time.Now()
		if !t.stopping {
			select {
			case <-t.stopReq:
				t.beginStop()
				continue
			default:
			}
			t.releaseDue(now)
			if !t.readySent && (t.pending <= 0 || !now.Before(t.readyBy)) {
				t.readySent = true
				t.ready <- nil
			}
		}
		if !now.Before(t.nextCheck) {
			t.nextCheck = now.Add(livenessEvery)
			if ok, err := alive(t.procRoot, t.p.PID, t.p.StartTime); err == nil && !ok {
				t.targetGone()
				return
			}
		}
		t.setAlarm(now)
		var ws unix.WaitStatus
		tid, err := unix.Wait4(-1, &ws, unix.WALL|unix.WNOTHREAD, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil: // ECHILD: not even the waker is left
			t.fail(fmt.Errorf("wait4: %w", err))
			return
		case t.w != nil && tid == t.w.pid:
			t.wakerEvent(ws)
		default:
			t.event(tid, ws)
		}
	}
}

// setAlarm points the timer that kicks the waker at the next thing to do
// without a stop: the first hold's end, Inject's deadline, the liveness
// check.
func (t *tracer) setAlarm(now time.Time) {
	next := t.nextCheck
	if !t.stopping && len(t.holds) > 0 && t.holds[0].due.Before(next) {
		next = t.holds[0].due
	}
	if !t.readySent && t.readyBy.Before(next) {
		next = t.readyBy
	}
	if next.Equal(t.alarmFor) {
		return
	}
	t.alarmFor = next
	t.alarm.Reset(next.Sub(now))
}

// releaseDue resumes the threads whose hold is over.
func (t *tracer) releaseDue(now time.Time) {
	for len(t.holds) > 0 && !t.holds[0].due.After(now) {
		h := heap.Pop(&t.holds).(hold)
		t.early = min(max(t.early+now.Sub(h.want)/8, 0), maxEarly)
		if h.th.held && t.threads[h.tid] == h.th {
			h.th.held = false
			t.resume(h.tid, h.th, 0)
		}
	}
}

func (t *tracer) resume(tid int, th *thread, sig int) {
	// ESRCH: killed while stopped; its exit is on its way.
	_ = ptraceResume(tid, sig)
	th.stopped = false
}

// beginStop detaches every stopped thread now, held ones first of all (a
// thread in a delay goes on at once with its call), and interrupts the
// others to detach each at its stop.
func (t *tracer) beginStop() {
	t.stopping = true
	t.holds = nil
	for tid, th := range t.threads {
		if th.stopped {
			_ = ptraceDetach(tid, 0)
			delete(t.threads, tid)
			continue
		}
		if err := ptraceInterrupt(tid); errors.Is(err, unix.ESRCH) {
			delete(t.threads, tid) // gone, or not ours
		}
	}
}

func (t *tracer) wakerEvent(ws unix.WaitStatus) {
	if ws.Stopped() {
		// A stop at its read, or the first one: go on, swallowing any
		// signal (it blocks them all anyway).
		_ = ptraceResume(t.w.pid, 0)
		return
	}
	if !ws.Exited() && !ws.Signaled() {
		return
	}
	// Someone killed it (and wait4 reaped it): fork another.
	old := t.w
	t.setWaker(nil)
	old.mu.Lock()
	if old.wfd >= 0 {
		unix.Close(old.wfd)
		old.wfd = -1
	}
	old.mu.Unlock()
	w, err := startWaker()
	if err != nil {
		// Without a waker, nothing but the target's own stops wakes the
		// loop: give up tracing rather than hold threads for good.
		t.fail(fmt.Errorf("the waker process died and another could not be started: %w", err))
		return
	}
	t.setWaker(w)
}

// event handles one wait status of a target thread.
func (t *tracer) event(tid int, ws unix.WaitStatus) {
	th := t.threads[tid]
	if ws.Exited() || ws.Signaled() {
		if th != nil {
			if th.initial {
				t.pending--
			}
			delete(t.threads, tid)
		}
		if tid == t.p.PID {
			// The leader's exit is reported once the whole group is gone.
			t.targetGone()
		}
		return
	}
	if !ws.Stopped() {
		return
	}
	if th == nil {
		// Attached by the kernel (PTRACE_O_TRACECLONE) and stopped before
		// its creator's clone event came.
		th = &thread{}
		t.threads[tid] = th
	}
	th.stopped = true
	if th.initial {
		th.initial = false
		t.pending--
	}
	sig := ws.StopSignal()
	ev := int(uint32(ws)>>16) & 0xff
	if t.stopping {
		t.detachAt(tid, sig, ev)
		return
	}
	switch {
	case sig == syscallStop:
		t.syscallStop(tid, th)
	case ev == unix.PTRACE_EVENT_STOP:
		if isStopSignal(sig) {
			// Group-stop: the process was stopped (SIGSTOP, ...). Leave it
			// stopped, but hear of SIGCONT.
			if ptraceListen(tid) == nil {
				th.stopped = false
			}
			return
		}
		// The interrupt from attach, a new thread's first stop, or the end
		// of a group-stop.
		t.resume(tid, th, 0)
	case ev == unix.PTRACE_EVENT_CLONE:
		if ntid, err := ptraceEventMsg(tid); err == nil && t.threads[ntid] == nil {
			t.threads[ntid] = &thread{}
		}
		t.resume(tid, th, 0)
	case ev == unix.PTRACE_EVENT_EXEC:
		// A thread other than the leader ran execve: it takes the leader's
		// tid, and every other thread is gone.
		if former, err := ptraceEventMsg(tid); err == nil && former != tid {
			if fth := t.threads[former]; fth != nil {
				fth.stopped = true
				t.threads[tid] = fth
				th = fth
			}
			delete(t.threads, former)
		}
		t.resume(tid, th, 0)
	case ev != 0:
		t.resume(tid, th, 0)
	default:
		// Signal-delivery-stop: deliver the signal.
		t.resume(tid, th, int(sig))
	}
}

func isStopSignal(sig unix.Signal) bool {
	return sig == unix.SIGSTOP || sig == unix.SIGTSTP || sig == unix.SIGTTIN || sig == unix.SIGTTOU
}

// detachAt detaches a thread at its stop while stopping. A signal it was
// about to get is handed over with the detach; a thread it was cloning is
// attached already and detached at its own first stop.
func (t *tracer) detachAt(tid int, sig unix.Signal, ev int) {
	dsig := 0
	if ev == 0 && sig != syscallStop {
		dsig = int(sig)
	}
	if ev == unix.PTRACE_EVENT_CLONE {
		if ntid, err := ptraceEventMsg(tid); err == nil && t.threads[ntid] == nil {
			if tr, err := tracerOf(t.procRoot, t.p.PID, ntid); err == nil && tr == t.self {
				t.threads[ntid] = &thread{}
			}
		}
	}
	_ = ptraceDetach(tid, dsig)
	delete(t.threads, tid)
}

// syscallStop decides at a system call stop whether to hold the thread.
func (t *tracer) syscallStop(tid int, th *thread) {
	entry, nr, fd := t.decode(tid, th)
	if entry && nr < uint64(len(t.match)) && t.match[nr] {
		if d, ok := t.choose(tid, fd); ok {
			th.held = true
			want := time.Now().Add(d)
			heap.Push(&t.holds, hold{due: want.Add(-min(t.early, d/2)), want: want, tid: tid, th: th})
			t.delayed.Add(1)
			return
		}
	}
	t.resume(tid, th, 0)
}

// decode reads which system call a stop is at: whether it is its entry,
// its number (^0 for another ABI than x86_64's), and its first argument.
func (t *tracer) decode(tid int, th *thread) (entry bool, nr, arg0 uint64) {
	if !t.regsMode {
		var info syscallInfo
		err := ptraceSyscallInfo(tid, &info)
		if err == nil {
			if info.Op != unix.PTRACE_SYSCALL_INFO_ENTRY {
				return false, 0, 0
			}
			if info.Arch != auditArchX86_64 {
				return true, ^uint64(0), 0
			}
			return true, info.Nr, info.Args[0]
		}
		if !errors.Is(err, unix.EIO) && !errors.Is(err, unix.EINVAL) {
			return false, 0, 0
		}
		t.regsMode = true // Linux before 5.3: count entries and exits
	}
	th.inSyscall = !th.inSyscall
	var regs unix.PtraceRegs
	if err := ptraceGetRegs(tid, &regs); err != nil || !th.inSyscall {
		return false, 0, 0
	}
	if regs.Cs != userCS64 {
		return true, ^uint64(0), 0
	}
	return true, regs.Orig_rax, regs.Rdi
}

// choose decides whether a matching call is delayed, and by how long. With
// a path prefix, its file descriptor is looked up at every matching call
// (a readlink of /proc/PID/task/TID/fd/N, some microseconds): no cache to
// go stale when the target closes and reuses descriptors.
func (t *tracer) choose(tid int, fd uint64) (time.Duration, bool) {
	if t.p.PathPrefix != "" {
		path, err := os.Readlink(t.procRoot + "/" + strconv.Itoa(t.p.PID) + "/task/" + strconv.Itoa(tid) + "/fd/" + strconv.Itoa(int(int32(fd))))
		if err != nil || !underPrefix(path, t.p.PathPrefix) {
			return 0, false
		}
	}
	t.seen.Add(1)
	if t.share < 100 && t.rng.Float64()*100 >= t.share {
		return 0, false
	}
	d := t.delay
	if t.jitter > 0 {
		d += time.Duration(t.rng.Int64N(int64(2*t.jitter)+1)) - t.jitter
	}
	return d, d > 0
}
