// Package signaltest makes stand-ins for containers on a Linux host, for
// root tests of the signal fault and of the agent: a cgroup named after a
// made-up container ID, and a "main process" in it that is pid 1 of a PID
// namespace of its own and records every SIGTERM it gets.
//
// The main process is the test binary itself, run again: a test package
// using Start must call RunTargetIfAsked first thing, from TestMain or init.
package signaltest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"faultline.dev/faultline/internal/testenv"
)

const (
	envMode = "FAULTLINE_TEST_TARGET"
	envFile = "FAULTLINE_TEST_TARGET_FILE"
)

// Target modes: on SIGTERM, record it and exit (Exit), or record it and
// go on running (Survive). Both run until SIGKILL otherwise.
const (
	Exit    = "exit"
	Survive = "survive"
)

// RunTargetIfAsked turns this process into a target when it was started
// as one, and never returns then.
func RunTargetIfAsked() {
	if mode := os.Getenv(envMode); mode != "" {
		os.Exit(runTarget(mode, os.Getenv(envFile)))
	}
}

func runTarget(mode, file string) int {
	c := make(chan os.Signal, 8)
	// A handler is needed: a pid 1 ignores the signals it does not handle.
	signal.Notify(c, syscall.SIGTERM)
	fmt.Println("ready")
	for range c {
		f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		_, err = f.WriteString("terminated\n")
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		if mode == Exit {
			return 0
		}
	}
	return 0
}

// Hierarchy finds where a cgroup hierarchy is mounted: version 1 finds the
// v1 hierarchy of the pids controller, version 2 the unified hierarchy.
func Hierarchy(version int) (string, error) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		switch {
		case version == 2 && f[2] == "cgroup2":
			return f[1], nil
		case version == 1 && f[2] == "cgroup" && hasOption(f[3], "pids"):
			return f[1], nil
		}
	}
	if version == 2 {
		return "", errors.New("no cgroup2 (unified) hierarchy is mounted")
	}
	return "", errors.New("no cgroup v1 hierarchy of the pids controller is mounted")
}

func hasOption(opts, o string) bool {
	for _, x := range strings.Split(opts, ",") {
		if x == o {
			return true
		}
	}
	return false
}

// NewID returns a made-up container ID: 64 hex digits.
func NewID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Cgroup makes ROOT/faultline-test-RAND/ID for a new container ID under a
// hierarchy's root, and removes both when the test ends (after the
// processes the test started, which the test's own cleanups end first).
func Cgroup(t testing.TB, root string) (dir, id string) {
	t.Helper()
	id = NewID()
	parent := filepath.Join(root, "faultline-test-"+id[:8])
	dir = filepath.Join(parent, id)
	if err := os.Mkdir(parent, 0o755); err != nil {
		t.Fatalf("make a test cgroup: %v", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		_ = os.Remove(parent)
		t.Fatalf("make a test cgroup: %v", err)
	}
	t.Cleanup(func() {
		for _, d := range []string{dir, parent} {
			// A cgroup can be removed once its last process is reaped;
			// the kernel may take a moment to see it empty.
			var err error
			for range 100 {
				if err = os.Remove(d); err == nil || errors.Is(err, os.ErrNotExist) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("remove test cgroup %s: %v", d, err)
			}
		}
	})
	return dir, id
}

// Target is a process the test started to stand for a container's main
// process.
type Target struct {
	Cmd  *exec.Cmd
	File string // where it records the SIGTERMs it gets, one line each

	done  chan struct{}
	state *os.ProcessState
}

// Start starts a target in mode Exit or Survive, as pid 1 of a new PID
// namespace when newPIDNamespace, and waits until it handles SIGTERM. The
// test ends it (by its pid) when it ends.
func Start(t testing.TB, mode string, newPIDNamespace bool) *Target {
	t.Helper()
	tg := &Target{File: filepath.Join(t.TempDir(), "signals"), done: make(chan struct{})}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envMode+"="+mode, envFile+"="+tg.File)
	cmd.Stderr = os.Stderr
	if newPIDNamespace {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a target process: %v", err)
	}
	tg.Cmd = cmd
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ready <- sc.Scan() && sc.Text() == "ready"
		for sc.Scan() {
		}
		_ = cmd.Wait()
		tg.state = cmd.ProcessState
		close(tg.done)
	}()
	t.Cleanup(tg.Kill)
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("the target process did not start")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the target process did not get ready in 10s")
	}
	return tg
}

// PID is the target's pid in this test's PID namespace.
func (tg *Target) PID() int { return tg.Cmd.Process.Pid }

// MoveTo puts the target in a cgroup, as its runtime would.
func (tg *Target) MoveTo(cgroupDir string) error {
	return os.WriteFile(filepath.Join(cgroupDir, "cgroup.procs"), []byte(strconv.Itoa(tg.PID())), 0o644)
}

// Signals returns the SIGTERMs recorded so far.
func (tg *Target) Signals() []string {
	b, err := os.ReadFile(tg.File)
	if err != nil {
		return nil
	}
	return strings.Fields(string(b))
}

// WaitSignals waits up to timeout for at least n recorded signals, and
// returns those recorded then.
func (tg *Target) WaitSignals(n int, timeout time.Duration) []string {
	end := time.Now().Add(timeout)
	for {
		s := tg.Signals()
		if len(s) >= n || time.Now().After(end) {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Exited waits up to timeout for the target to end, and returns how it
// ended, or nil if it is still running.
func (tg *Target) Exited(timeout time.Duration) *os.ProcessState {
	select {
	case <-tg.done:
		return tg.state
	default:
	}
	select {
	case <-tg.done:
		return tg.state
	case <-time.After(timeout):
		return nil
	}
}

// Kill ends the target with SIGKILL and waits for it to be reaped.
func (tg *Target) Kill() {
	select {
	case <-tg.done:
	default:
		_ = tg.Cmd.Process.Kill()
		<-tg.done
	}
}

// Container makes a stand-in container in the first hierarchy available (v1
// pids, else the unified one): a cgroup named after a new container ID,
// holding a target that is pid 1 of its own PID namespace.
func Container(t testing.TB, mode string) (*Target, string) {
	t.Helper()
	testenv.RequireRoot(t, "make cgroups and PID namespaces")
	root, err := Hierarchy(1)
	if err != nil {
		if root, err = Hierarchy(2); err != nil {
			testenv.Unavailable(t, "no cgroup hierarchy to make a container in: %v", err)
		}
	}
	dir, id := Cgroup(t, root)
	tg := Start(t, mode, true)
	if err := tg.MoveTo(dir); err != nil {
		t.Fatalf("move the target %d into %s: %v", tg.PID(), dir, err)
	}
	return tg, id
}
