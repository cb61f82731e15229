//go:build linux && amd64

package disklatency

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The waker lets other goroutines wake the tracer thread out of wait4.
//
// The tracer blocks in wait4(-1, __WALL|__WNOTHREAD), the cheapest way to
// hear of the tracees' stops, which come at every system call of every
// thread. Nothing but a state change of one of its tracees or children ends
// that wait: not a timerfd, not an eventfd, not a signal (the Go runtime
// installs its handlers with SA_RESTART, so wait4 restarts). Polling with
// WNOHANG between sleeps would add the sleep to every system call of the
// target; waiting for the SIGCHLD each stop also raises (os/signal) costs a
// detour through the runtime's signal goroutine at every stop.
//
// So the tracer thread forks a tiny child process, the waker, and traces it
// too: the waker does nothing but read(2) a pipe, and the tracer resumes it
// with PTRACE_SYSCALL, so that when someone writes a byte to the pipe (a
// delay that ends, a Recover) the waker's read returns, it stops at the
// read's exit, and the tracer's wait4 returns. Its cost is two stops per
// wake-up, none per system call of the target.
//
// The waker is a raw fork(2) of this process that runs no Go code but the
// few raw system calls below: it blocks every signal, asks for SIGKILL when
// the tracer thread exits (PR_SET_PDEATHSIG; the tracer also seizes it with
// PTRACE_O_EXITKILL), closes every file descriptor but its end of the pipe
// (it must not hold the agent's sockets and pipes open), and reads until
// the pipe's write end closes.
type waker struct {
	pid int

	mu  sync.Mutex
	wfd int // write end of the pipe, non-blocking; -1 once closed
}

// Globals, not locals, so that the child touches no stack it did not
// inherit and the compiler has nothing to allocate.
var (
	wakerBuf        [64]byte
	wakerAllSignals = ^uint64(0)
)

// forkWaker forks the waker, reading rfd; it returns the child's pid in the
// parent and never returns in the child. It must run on the tracer's
// locked thread: the child is that thread's child, which wait4 with
// __WNOTHREAD sees and PR_SET_PDEATHSIG ties to.
//
//go:nosplit
//go:norace
func forkWaker(rfd int) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	if r != 0 {
		return int(r), 0
	}
	// The child: one thread, a copy of the parent's memory, and no Go
	// runtime to rely on. Raw system calls only, and never return.
	// Their errors have nowhere to go: the child cannot report, and the
	// waker works without them.
	_, _, _ = syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&wakerAllSignals)), 0, 8, 0, 0)
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0)
	if rfd > 0 {
		_, _, _ = syscall.RawSyscall(unix.SYS_CLOSE_RANGE, 0, uintptr(rfd-1), 0)
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_CLOSE_RANGE, uintptr(rfd+1), ^uintptr(0)>>32, 0); e == syscall.ENOSYS {
		for fd := uintptr(0); fd < 4096; fd++ { // kernels before 5.9
			if fd != uintptr(rfd) {
				_, _, _ = syscall.RawSyscall(syscall.SYS_CLOSE, fd, 0, 0)
			}
		}
	}
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(rfd), uintptr(unsafe.Pointer(&wakerBuf[0])), uintptr(len(wakerBuf)))
		if e == 0 && n == 0 || e != 0 && e != syscall.EINTR {
			_, _, _ = syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
		}
	}
}

// startWaker forks and seizes a waker; the tracer's loop gets its first
// stop (the interrupt) and resumes it.
func startWaker() (*waker, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("waker pipe: %w", err)
	}
	if err := unix.SetNonblock(p[1], true); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, fmt.Errorf("waker pipe: %w", err)
	}
	pid, errno := forkWaker(p[0])
	unix.Close(p[0])
	if errno != 0 {
		unix.Close(p[1])
		return nil, fmt.Errorf("fork the waker: %w", errno)
	}
	w := &waker{pid: pid, wfd: p[1]}
	if err := ptraceSeize(pid, unix.PTRACE_O_TRACESYSGOOD|unix.PTRACE_O_EXITKILL); err != nil {
		w.close()
		return nil, fmt.Errorf("seize the waker: %w", err)
	}
	if err := unix.PtraceInterrupt(pid); err != nil {
		w.close()
		return nil, fmt.Errorf("interrupt the waker: %w", err)
	}
	return w, nil
}

// kick wakes the tracer (from any goroutine). A full pipe means a wake-up
// is pending already.
func (w *waker) kick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.wfd >= 0 {
		_, _ = unix.Write(w.wfd, wakerBuf[:1])
	}
}

// close ends the waker and reaps it; on the tracer thread only.
func (w *waker) close() {
	w.mu.Lock()
	if w.wfd >= 0 {
		unix.Close(w.wfd)
		w.wfd = -1
	}
	w.mu.Unlock()
	if w.pid <= 0 {
		return
	}
	_ = unix.Kill(w.pid, unix.SIGKILL)
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(w.pid, &ws, unix.WALL, nil)
		if err == nil && !ws.Exited() && !ws.Signaled() {
			continue // a stop reported before the kill took
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return
	}
}
