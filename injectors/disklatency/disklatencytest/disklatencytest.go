// Package disklatencytest makes stand-ins for a process whose disk calls a
// test slows down: the test binary run again as a target whose worker
// threads (distinct OS threads) each write a byte to a file of their own
// and fdatasync it, in a loop, and record how long each fdatasync took.
// The test drives it over its stdin and reads its answers on its stdout.
//
// The target is not the test process's child: a process traced by a
// thread of its real parent's thread group has its ptrace stops reported
// to that parent's other threads too (the kernel sees no reparenting), so
// the test's wait for its child would swallow the tracer's stops. A
// launcher process, the test's child, starts it and waits for it.
//
// A test package using Start must call RunTargetIfAsked first thing, from
// TestMain or init.
package disklatencytest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	envConfig = "FAULTLINE_TEST_DISKLATENCY_TARGET"
	envLaunch = "FAULTLINE_TEST_DISKLATENCY_LAUNCH"
)

// Modes of the workers' loop.
const (
	// Fdatasync: write one byte to its file, then fdatasync it; each call's
	// fdatasync latency is recorded.
	Fdatasync = "fdatasync"
	// Getpid: call getpid in batches of GetpidBatch; each batch's mean
	// latency per call is recorded: the worst case of a traced process,
	// a stop at nearly every instruction.
	Getpid = "getpid"
)

// GetpidBatch is how many getpid calls a Getpid worker's sample averages.
const GetpidBatch = 2000

// Config is what a target runs: one worker per entry of Dirs, whose file
// is made in that directory.
type Config struct {
	Mode string   `json:"mode"`
	Dirs []string `json:"dirs"`
}

// Worker is one worker thread's record since the last Reset.
type Worker struct {
	TID     int     `json:"tid"`
	Dir     string  `json:"dir"`
	File    string  `json:"file"`
	NS      []int64 `json:"ns"` // latency of each call (each batch in Getpid mode)
	Errors  int     `json:"errors"`
	LastErr string  `json:"lastErr,omitempty"`
}

// Mean latency of the recorded calls.
func (w Worker) Mean() time.Duration {
	if len(w.NS) == 0 {
		return 0
	}
	var sum int64
	for _, n := range w.NS {
		sum += n
	}
	return time.Duration(sum / int64(len(w.NS)))
}

// Report is a target's answer to "report".
type Report struct {
	Workers []Worker `json:"workers"`
}

// All merges the workers' latencies.
func (r Report) All() []int64 {
	var out []int64
	for _, w := range r.Workers {
		out = append(out, w.NS...)
	}
	return out
}

// RunTargetIfAsked turns this process into a target, or the launcher of
// one, when it was started as one, and never returns then.
func RunTargetIfAsked() {
	if os.Getenv(envLaunch) != "" {
		os.Exit(launch())
	}
	cfg := os.Getenv(envConfig)
	if cfg == "" {
		return
	}
	var c Config
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		fmt.Fprintln(os.Stderr, "target config:", err)
		os.Exit(2)
	}
	os.Exit(serve(c, os.Stdin, os.Stdout))
}

// launch runs the target with this process's stdin, stdout and stderr,
// waits for it, and exits as it did. Each dies with its parent.
func launch() int {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, envLaunch+"=") })
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread() // Pdeathsig follows the thread that started the child
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 1
		}
		fmt.Fprintln(os.Stderr, "launch the target:", err)
		return 3
	}
	return 0
}

type server struct {
	mode    string
	mu      sync.Mutex
	workers []*Worker
	marked  map[int]bool
	out     *json.Encoder
}

// serve starts the workers and answers commands, one a line:
//
//	reset         forget the latencies recorded so far
//	mark          remember the threads there are now
//	extra DIR     start a worker on a thread that did not exist at mark
//	report        print a Report
func serve(c Config, in io.Reader, out io.Writer) int {
	s := &server{mode: c.Mode, out: json.NewEncoder(out)}
	for _, d := range c.Dirs {
		if _, err := s.start(d); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
	}
	fmt.Fprintln(out, "ready", os.Getpid())
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "reset":
			s.mu.Lock()
			for _, w := range s.workers {
				w.NS, w.Errors, w.LastErr = nil, 0, ""
			}
			s.mu.Unlock()
			fmt.Fprintln(out, "ok")
		case "mark":
			s.marked = map[int]bool{}
			for _, tid := range tasks() {
				s.marked[tid] = true
			}
			fmt.Fprintln(out, "ok")
		case "extra":
			tid, err := s.extra(arg)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 3
			}
			fmt.Fprintln(out, tid)
		case "report":
			s.mu.Lock()
			r := Report{}
			for _, w := range s.workers {
				c := *w
				c.NS = slices.Clone(w.NS)
				r.Workers = append(r.Workers, c)
			}
			s.mu.Unlock()
			_ = s.out.Encode(r)
		default:
			fmt.Fprintln(os.Stderr, "unknown command", sc.Text())
			return 2
		}
	}
	return 0
}

func tasks() []int {
	entries, _ := os.ReadDir("/proc/self/task")
	var out []int
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, tid)
		}
	}
	return out
}

// start starts a worker on a goroutine locked to its own OS thread.
func (s *server) start(dir string) (int, error) {
	started := make(chan error, 1)
	tid := make(chan int, 1)
	go func() {
		runtime.LockOSThread()
		tid <- unix.Gettid()
		s.work(dir, started)
	}()
	t := <-tid
	return t, <-started
}

// extra starts a worker on a thread created after mark. Go picks the
// thread a goroutine runs on; but goroutines locked to their threads and
// all blocked at once hold one thread each, so one more of them than there
// are threads now makes the runtime create one at least. The worker takes
// one that is new; the others end, and their threads with them.
func (s *server) extra(dir string) (int, error) {
	n := len(tasks()) + 1
	type cand struct {
		tid int
		use chan bool
	}
	cands := make(chan cand)
	for range n {
		go func() {
			runtime.LockOSThread() // never unlocked: an unused thread ends with its goroutine
			c := cand{unix.Gettid(), make(chan bool, 1)}
			cands <- c
			if <-c.use {
				started := make(chan error, 1)
				go func() {
					if err := <-started; err != nil {
						fmt.Fprintln(os.Stderr, err)
						os.Exit(3)
					}
				}()
				s.work(dir, started)
			}
		}()
	}
	var all []cand
	for range n {
		all = append(all, <-cands)
	}
	chosen := -1
	for i, c := range all {
		if !s.marked[c.tid] && chosen < 0 {
			chosen = i
			c.use <- true
			continue
		}
		c.use <- false
	}
	if chosen < 0 {
		return 0, fmt.Errorf("extra: no new thread among %d", n)
	}
	return all[chosen].tid, nil
}

// work runs one worker's loop on the calling (locked) thread.
func (s *server) work(dir string, started chan<- error) {
	w := &Worker{TID: unix.Gettid(), Dir: dir}
	var fd int
	if s.mode != Getpid {
		f, err := os.CreateTemp(dir, "worker-*")
		if err != nil {
			started <- err
			return
		}
		w.File = f.Name()
		fd = int(f.Fd()) // f stays referenced below, so it is never closed
		defer f.Close()
	}
	s.mu.Lock()
	s.workers = append(s.workers, w)
	s.mu.Unlock()
	started <- nil
	b := []byte{'x'}
	for {
		var d time.Duration
		var err error
		if s.mode == Getpid {
			t0 := time.Now()
			for range GetpidBatch {
				unix.Getpid()
			}
			d = time.Since(t0) / GetpidBatch
		} else {
			if _, err = unix.Write(fd, b); err == nil {
				t0 := time.Now()
				err = unix.Fdatasync(fd)
				d = time.Since(t0)
			}
		}
		s.mu.Lock()
		if err != nil {
			w.Errors++
			w.LastErr = err.Error()
		} else {
			w.NS = append(w.NS, int64(d))
		}
		s.mu.Unlock()
		if err != nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// Target is a target process the test started.
type Target struct {
	// Launcher is the target's parent, the test's child.
	Launcher *exec.Cmd

	pid  int
	proc *os.Process // by pidfd: never another process that reused the pid
	mu   sync.Mutex
	in   io.WriteCloser
	out  *bufio.Reader
	done chan struct{}
}

// Start starts a target running c, waits until its workers run, and ends
// it when the test ends.
func Start(t testing.TB, c Config) *Target {
	t.Helper()
	cfg, _ := json.Marshal(c)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envConfig+"="+string(cfg), envLaunch+"=1")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Pdeathsig fires when the thread that forked the launcher ends, not
	// the process: a tracer ends its locked thread when it stops, and that
	// may be the one that forked. The fork happens on a thread kept for
	// the test's whole life.
	started, release := make(chan error), make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		started <- cmd.Start()
		<-release
	}()
	t.Cleanup(func() { close(release) })
	if err := <-started; err != nil {
		t.Fatalf("start a target process: %v", err)
	}
	tg := &Target{Launcher: cmd, in: in, out: bufio.NewReader(out), done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(tg.done)
	}()
	t.Cleanup(tg.Kill)
	word, pid, _ := strings.Cut(tg.line(t), " ")
	if word != "ready" {
		t.Fatalf("the target said %q, not ready", word)
	}
	if tg.pid, err = strconv.Atoi(pid); err != nil {
		t.Fatalf("the target's pid %q: %v", pid, err)
	}
	if tg.proc, err = os.FindProcess(tg.pid); err != nil {
		t.Fatal(err)
	}
	return tg
}

// PID of the target.
func (tg *Target) PID() int { return tg.pid }

func (tg *Target) line(t testing.TB) string {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	c := make(chan res, 1)
	go func() {
		s, err := tg.out.ReadString('\n')
		c <- res{strings.TrimSuffix(s, "\n"), err}
	}()
	select {
	case r := <-c:
		if r.err != nil {
			t.Fatalf("the target's answer: %v", r.err)
		}
		return r.s
	case <-time.After(20 * time.Second):
		t.Fatal("the target did not answer in 20s")
		return ""
	}
}

func (tg *Target) ask(t testing.TB, cmd string) string {
	t.Helper()
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if _, err := io.WriteString(tg.in, cmd+"\n"); err != nil {
		t.Fatalf("tell the target %q: %v", cmd, err)
	}
	return tg.line(t)
}

// Reset makes the target forget the latencies recorded so far.
func (tg *Target) Reset(t testing.TB) { tg.ask(t, "reset") }

// Mark makes the target remember its threads now, so that Extra starts a
// worker on a thread made after it.
func (tg *Target) Mark(t testing.TB) { tg.ask(t, "mark") }

// Extra starts one more worker, in dir, on a thread made after Mark, and
// returns its thread ID.
func (tg *Target) Extra(t testing.TB, dir string) int {
	t.Helper()
	s := tg.ask(t, "extra "+dir)
	tid, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("the target answered %q to extra", s)
	}
	return tid
}

// Report returns what the workers recorded since the last Reset.
func (tg *Target) Report(t testing.TB) Report {
	t.Helper()
	s := tg.ask(t, "report")
	var r Report
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("the target's report: %v", err)
	}
	return r
}

// Measure resets the records, waits d, and reports.
func (tg *Target) Measure(t testing.TB, d time.Duration) Report {
	t.Helper()
	tg.Reset(t)
	time.Sleep(d)
	return tg.Report(t)
}

// Kill ends the target with SIGKILL and waits for its launcher to reap it.
func (tg *Target) Kill() {
	select {
	case <-tg.done:
		return
	default:
	}
	if tg.proc != nil {
		_ = tg.proc.Kill()
	} else {
		_ = tg.Launcher.Process.Kill()
	}
	select {
	case <-tg.done:
	case <-time.After(10 * time.Second):
		_ = tg.Launcher.Process.Kill()
	}
}

// Alive reports whether the target still runs.
func (tg *Target) Alive() bool {
	select {
	case <-tg.done:
		return false
	default:
		return tg.proc.Signal(syscall.Signal(0)) == nil
	}
}
