// Package sandboxtest lets integration tests anywhere in the repository
// share one sandbox: the first test that asks for it reuses the sandbox
// named by $FAULTLINE_TEST_SANDBOX (default "test") when it is up, or
// brings it up, and gives out clients for it.
//
// Test processes (one per package) hold a shared lock on the sandbox while
// they use it. A package's TestMain calls Main; at its end, the last user
// of a sandbox that tests brought up removes it. A sandbox that was up
// before (started by `make test`, or by hand) is never removed by tests.
package sandboxtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"faultline.dev/faultline/deploy"
	"faultline.dev/faultline/sandbox"
)

// Env is a running sandbox and clients for it.
type Env struct {
	State      *sandbox.State
	Plan       sandbox.Plan
	RESTConfig *rest.Config
	Client     kubernetes.Interface
}

var (
	once     sync.Once
	shared   *Env
	sharedEr error
)

// Config is the shared sandbox's configuration: fast timings so node-loss
// timelines fit a test run, Prometheus for the analyzers, faultline itself,
// and the ingress (nginx) for tests that need real 502s and 503s as users
// behind an ingress see them. `make test` brings it up with the same flags.
func Config() sandbox.Config {
	c := sandbox.DefaultConfig()
	c.Name = "test"
	if n := os.Getenv("FAULTLINE_TEST_SANDBOX"); n != "" {
		c.Name = n
	}
	c.Timings = sandbox.TimingsFast
	c.Prometheus = true
	c.Faultline = true
	c.Ingress = true
	return c
}

// RequireRoot fails the test when not root: in CI a missing privilege must
// fail loudly, never skip.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (network namespaces, cgroups, containerd); run it as root, e.g. `sudo make test`")
	}
}

// Get returns the shared sandbox, bringing it up on first use.
func Get(t testing.TB) *Env {
	t.Helper()
	RequireRoot(t)
	once.Do(func() {
		// Users first, so that a finishing package cannot remove the sandbox
		// between our check and our use.
		if sharedEr = joinUsers(); sharedEr == nil {
			shared, sharedEr = get()
		}
	})
	if sharedEr != nil {
		t.Fatalf("shared sandbox: %v", sharedEr)
	}
	shareByDefault(t)
	return shared
}

func get() (*Env, error) {
	c := Config()
	st, err := sandbox.Status(c)
	if err == nil && st.Ready && st.Healthy() != nil {
		// Marked ready but its processes are gone (a reboot): replace it.
		if err := sandbox.Down(c, nil); err != nil {
			return nil, err
		}
		st = nil
	}
	if st == nil || !st.Ready {
		bins, err := Binaries()
		if err != nil {
			return nil, err
		}
		c.BinDir = bins
		p := sandbox.NewProgress(os.Stderr)
		st, err = sandbox.Up(context.Background(), c, p, false)
		if errors.Is(err, sandbox.ErrAlreadyRunning) {
			st, err = waitReady(c, 5*time.Minute)
		} else if err == nil {
			err = os.WriteFile(startedMarker(c), nil, 0o600)
		}
		if err != nil {
			return nil, err
		}
	}
	return newEnv(st)
}

func waitReady(c sandbox.Config, timeout time.Duration) (*sandbox.State, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if st, err := sandbox.Status(c); err == nil && st.Ready {
			return st, nil
		}
		time.Sleep(time.Second)
	}
	return nil, fmt.Errorf("sandbox %q being brought up elsewhere is not ready after %s", c.Name, timeout)
}

func newEnv(st *sandbox.State) (*Env, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Env{State: st, Plan: sandbox.NewPlan(st.Index), RESTConfig: cfg, Client: cs}, nil
}

// Main runs a package's tests and removes the shared sandbox afterwards if
// this process brought it up.
func Main(m *testing.M) {
	code := m.Run()
	if binDir != "" && !binKept {
		_ = os.RemoveAll(binDir)
	}
	if users != nil {
		// Trade the shared lock for an exclusive one: it is granted only
		// when no other test process uses the sandbox.
		_ = syscall.Flock(int(users.Fd()), syscall.LOCK_UN)
		if syscall.Flock(int(users.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			if _, err := os.Stat(startedMarker(Config())); err == nil {
				if err := sandbox.Down(Config(), sandbox.NewProgress(os.Stderr)); err != nil {
					fmt.Fprintln(os.Stderr, "sandbox down:", err)
					if code == 0 {
						code = 1
					}
				}
				_ = os.Remove(users.Name())
			}
			// No other process uses the sandbox, so none holds a claim.
			_ = os.RemoveAll(claimsDir())
		}
		users.Close()
	}
	os.Exit(code)
}

// users is this process's lock on the shared sandbox.
var (
	users     *os.File
	usersOnce sync.Once
	usersErr  error
)

// joinUsers makes this process a user of the shared sandbox until it ends.
func joinUsers() error {
	usersOnce.Do(func() { usersErr = lockUsers(syscall.LOCK_SH) })
	return usersErr
}

func lockUsers(how int) error {
	f, err := os.OpenFile(Config().UsersFile(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return err
	}
	users = f
	return nil
}

// startedMarker says that tests, not a person, brought the sandbox up.
func startedMarker(c sandbox.Config) string { return filepath.Join(c.Dir(), "started-by-tests") }

var (
	binOnce sync.Once
	binDir  string
	binErr  error
	// binKept says binDir is make's, not the tests' to remove.
	binKept bool
)

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Binaries builds faultline, demo-app and pause (static) once per test
// process and returns their directory, or returns the directory
// $FAULTLINE_TEST_BIN_DIR names, where make test has built them for every
// package.
func Binaries() (string, error) {
	binOnce.Do(func() {
		// make test has built them once for every package.
		if dir := os.Getenv("FAULTLINE_TEST_BIN_DIR"); dir != "" {
			binDir, binKept = dir, true
			return
		}
		binDir, binErr = os.MkdirTemp("", "faultline-test-bin-")
		if binErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-o", binDir+"/", "./cmd/...", "./sandbox/pause")
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build test binaries: %v\n%s", err, out)
		}
	})
	return binDir, binErr
}

// WaitFor polls cond every 250 ms until it holds, or fails the test after
// timeout naming what it waited for.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// GateRuns is how many times each case of a gate runs: 1 in CI, more with
// `make gate-validity` (FAULTLINE_GATE_RUNS).
func GateRuns(t testing.TB) int {
	t.Helper()
	n := 1
	if v := os.Getenv("FAULTLINE_GATE_RUNS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("FAULTLINE_GATE_RUNS=%q: want a count of at least 1", v)
		}
	}
	return n
}

// Kubectl runs the sandbox's pinned kubectl against env with args, as a
// user would, and returns its combined output and exit code.
func Kubectl(t testing.TB, env *Env, args ...string) (string, int) {
	t.Helper()
	return run(t, filepath.Join(sandbox.ToolsDir(), "kubectl"), append([]string{"--kubeconfig", env.State.Kubeconfig}, args...)...)
}

// CLI runs the faultline CLI built for the tests against env with args,
// and returns its combined output and exit code.
func CLI(t testing.TB, env *Env, args ...string) (string, int) {
	t.Helper()
	bins, err := Binaries()
	if err != nil {
		t.Fatal(err)
	}
	return run(t, filepath.Join(bins, "faultline"), append(args, "--kubeconfig", env.State.Kubeconfig)...)
}

func run(t testing.TB, bin string, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	return string(out), 0
}

// Own brings up a sandbox for the test alone, named NAME after the shared
// one's (at most 16 characters in all), and removes it when the test ends:
// for a test that acts on the whole control plane (slows etcd, kills the
// controller, turns the kill switch on) and would otherwise have to run
// with nothing beside it. It runs faultline, fast timings and no real node
// (up in seconds) unless edit says otherwise.
func Own(t testing.TB, name string, edit func(*sandbox.Config)) *Env {
	t.Helper()
	RequireRoot(t)
	bins, err := Binaries()
	if err != nil {
		t.Fatal(err)
	}
	c := sandbox.DefaultConfig()
	c.Name = Config().Name + "-" + name
	c.Timings, c.Faultline, c.RealNodes, c.BinDir = sandbox.TimingsFast, true, 0, bins
	if edit != nil {
		edit(&c)
	}
	_ = sandbox.Down(c, nil) // a leftover of a killed run
	progress := sandbox.NewProgress(os.Stderr)
	st, err := sandbox.Up(context.Background(), c, progress, false)
	if err != nil {
		t.Fatalf("sandbox %s: %v", c.Name, err)
	}
	t.Cleanup(func() {
		if err := sandbox.Down(c, progress); err != nil {
			t.Errorf("sandbox %s down: %v", c.Name, err)
		}
	})
	env, err := newEnv(st)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// ApplyCRDs server-side applies the CRDs of manifests and waits until the
// API server serves each one's resource (a new CRD is served a moment after
// it is created), failing the test after 30 s.
func ApplyCRDs(t testing.TB, cfg *rest.Config, manifests []byte) {
	t.Helper()
	ctx := context.Background()
	if err := deploy.Apply(ctx, cfg, manifests); err != nil {
		t.Fatalf("apply CRDs: %v", err)
	}
	if err := deploy.WaitServed(ctx, cfg, manifests, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}
