//go:build root

package memstress

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"faultline.dev/faultline/injectors/procfs"
	"faultline.dev/faultline/internal/testenv"
)

const MiB = 1 << 20

// v1Hierarchy is the cgroup v1 memory hierarchy the container-mode tests
// run in.
func v1Hierarchy(t testing.TB) hierarchy {
	t.Helper()
	testenv.RequireRoot(t, "make memory cgroups")
	h, err := probeHierarchy(DefaultV1Root)
	if err != nil || h.Version != 1 {
		testenv.Unavailable(t, "no cgroup v1 memory hierarchy at %s: %v", DefaultV1Root, err)
	}
	return h
}

// testCgroup makes a cgroup of the test's, standing for a container, with
// a memory limit (0: none), and removes it (and whatever a fault left in
// it) when the test ends.
func testCgroup(t testing.TB, h hierarchy, name string, limit int64) string {
	t.Helper()
	rel := "/faultline-test-" + name + "-" + strconv.Itoa(os.Getpid())
	if err := os.Mkdir(h.dir(rel), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		entries, _ := os.ReadDir(h.dir(rel))
		for _, e := range entries {
			if e.IsDir() {
				if err := h.remove(filepath.Join(rel, e.Name()), 5*time.Second); err != nil {
					t.Errorf("a cgroup left in the test's: %v", err)
				}
			}
		}
		if err := h.remove(rel, 5*time.Second); err != nil {
			t.Errorf("removing the test's cgroup: %v", err)
		}
	})
	if limit > 0 {
		file, value := "memory.limit_in_bytes", strconv.FormatInt(limit, 10)
		if h.Version == 2 {
			file = "memory.max"
		}
		if err := os.WriteFile(filepath.Join(h.dir(rel), file), []byte(value), 0); err != nil {
			t.Fatal(err)
		}
	}
	return rel
}

func newFault(t testing.TB, id string, p Params) *Fault {
	t.Helper()
	f, err := NewFault(id, p)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func ctx30(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func inject(t testing.TB, f *Fault) {
	t.Helper()
	if err := f.Inject(ctx30(t)); err != nil {
		t.Fatalf("inject: %v", err)
	}
}

func recoverFault(t testing.TB, f *Fault) {
	t.Helper()
	if err := f.Recover(ctx30(t)); err != nil {
		t.Fatalf("recover: %v", err)
	}
}

// recoverAtEnd recovers f when the test ends, should it fail before.
func recoverAtEnd(t testing.TB, f *Fault) {
	t.Cleanup(func() {
		if err := f.Recover(ctx30(t)); err != nil {
			t.Errorf("recover at the end: %v", err)
		}
	})
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("%s: not after %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func status(t testing.TB, f *Fault) Status {
	t.Helper()
	s, err := f.Status()
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return s
}

func state(t testing.TB, f *Fault) State {
	t.Helper()
	st, ok, err := readState(f.Dir())
	if err != nil || !ok {
		t.Fatalf("state of %s: %v, %v", f.ID, ok, err)
	}
	return st
}

// procStatus returns a field of /proc/PID/status in bytes (a kB field).
func procStatus(t testing.TB, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

func readUint(t testing.TB, file string) int64 {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// leavesNothing checks that the fault left no stressor, cgroup, or state.
func leavesNothing(t testing.TB, f *Fault, h hierarchy, pid int, start uint64) {
	t.Helper()
	if pid != 0 && alive(pid, start) {
		t.Errorf("the stressor %d is alive", pid)
	}
	own := ownCgroup(f.ID, f.Params)
	if _, err := os.Stat(h.dir(own)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the fault's cgroup %s: %v, want it gone", h.dir(own), err)
	}
	if _, err := os.Stat(f.Dir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the fault's state directory %s: %v, want it gone", f.Dir(), err)
	}
	if ok, err := f.Verify(context.Background()); ok || err != nil {
		t.Errorf("verify after recovery: %v, %v; want false, nil", ok, err)
	}
	if s := status(t, f); s.Injected {
		t.Errorf("status after recovery: %+v", s)
	}
}

func TestAContainerStressorHoldsItsTargetInTheContainersLimitAndRecoverLeavesNothing(t *testing.T) {
	h := v1Hierarchy(t)
	cg := testCgroup(t, h, "hold", 256*MiB)
	stateDir := filepath.Join(t.TempDir(), "state")
	f := newFault(t, "hold", Params{Mode: ModeContainer, Cgroup: cg, TargetBytes: 200 * MiB, RampBytesPerSecond: 400 * MiB, StateDir: stateDir})
	recoverAtEnd(t, f)
	inject(t, f)
	st := state(t, f)
	if st.PID == 0 || !alive(st.PID, st.StartTime) {
		t.Fatalf("after Inject, the state records no live stressor: %+v", st)
	}
	if b, err := os.ReadFile(cgroupFileOf(st.PID)); err != nil || !strings.Contains(string(b), ":memory:"+st.Cgroup+"\n") {
		t.Fatalf("the stressor's cgroups: %q (%v), want memory:%s", b, err, st.Cgroup)
	}
	waitFor(t, 30*time.Second, "the stressor holding", func() bool { return status(t, f).Phase == PhaseHolding })

	rss, hwm := procStatus(t, st.PID, "VmRSS"), procStatus(t, st.PID, "VmHWM")
	own := readUint(t, filepath.Join(h.dir(st.Cgroup), "memory.usage_in_bytes"))
	container := readUint(t, filepath.Join(h.dir(cg), "memory.usage_in_bytes"))
	t.Logf("holding: VmRSS %d MiB, VmHWM %d MiB; own cgroup %d MiB, container %d MiB; %v", rss/MiB, hwm/MiB, own/MiB, container/MiB, status(t, f))
	if rss < 200*MiB {
		t.Errorf("VmRSS %d bytes, want at least 200 MiB", rss)
	}
	if own < 200*MiB {
		t.Errorf("the fault's cgroup holds %d bytes, want at least 200 MiB", own)
	}
	if container < own {
		t.Errorf("the container's cgroup holds %d bytes, less than its child's %d: the charges do not count against its limit", container, own)
	}
	var p Progress
	if err := readJSON(filepath.Join(f.Dir(), progressFile), &p); err != nil {
		t.Fatal(err)
	}
	if p.Phase != PhaseHolding || p.PID != st.PID || p.StartTime != st.StartTime || p.TouchedBytes != 200*MiB || p.ResidentBytes < 200*MiB {
		t.Errorf("progress file: %+v", p)
	}
	s := status(t, f)
	if !s.Alive || s.StressorOOMKilled || s.OOMKills != 0 || s.CgroupUsageBytes < 200*MiB || !strings.HasPrefix(s.String(), "stressor holding") {
		t.Errorf("status: %+v %q", s, s)
	}
	if e := f.Effect(context.Background()); e != s.String() {
		t.Errorf("effect %q, want the status %q", e, s)
	}

	// Idempotent: the same stressor, also for a fault rebuilt from its
	// parameters.
	inject(t, newFault(t, "hold", f.Params))
	if st2 := state(t, f); st2.PID != st.PID || st2.StartTime != st.StartTime {
		t.Errorf("a second Inject replaced the stressor %d by %d", st.PID, st2.PID)
	}
	if ok, err := f.Verify(context.Background()); !ok || err != nil {
		t.Errorf("verify: %v, %v", ok, err)
	}

	recoverFault(t, f)
	leavesNothing(t, f, h, st.PID, st.StartTime)
	if _, err := os.Stat(stateDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the state directory the fault made: %v, want it gone", err)
	}
	recoverFault(t, f) // idempotent
}

func cgroupFileOf(pid int) string { return "/proc/" + strconv.Itoa(pid) + "/cgroup" }

func TestPushingPastTheLimitGetsTheStressorOOMKilledOnceAndStatusSaysSo(t *testing.T) {
	h := v1Hierarchy(t)
	cg := testCgroup(t, h, "push", 256*MiB)
	f := newFault(t, "push", Params{Mode: ModeContainer, Cgroup: cg, TargetBytes: 128 * MiB, RampBytesPerSecond: 400 * MiB, PushPastLimit: true, StateDir: t.TempDir()})
	recoverAtEnd(t, f)
	inject(t, f)
	st := state(t, f)
	waitFor(t, 30*time.Second, "the stressor's OOM kill", func() bool { return !alive(st.PID, st.StartTime) })
	// Its reaper records the outcome, then removes its cgroup.
	waitFor(t, 10*time.Second, "the outcome recorded", func() bool { return state(t, f).Outcome != "" })
	s := status(t, f)
	t.Logf("%s; %#v", s, s)
	if !s.StressorOOMKilled || s.Outcome != OutcomeOOMKilled || s.OOMKills != 1 {
		t.Errorf("status: %+v, want the stressor OOM-killed, 1 OOM kill", s)
	}
	// The cgroup's peak counts a few pages of kernel memory above the limit.
	if s.PeakBytes < 200*MiB || s.PeakBytes > 257*MiB {
		t.Errorf("OOM-killed at %d bytes, want between 200 and 257 MiB", s.PeakBytes)
	}
	if !strings.HasPrefix(s.String(), "stressor OOM-killed at ") || !strings.HasSuffix(s.String(), "(1 OOM kill in the cgroup)") {
		t.Errorf("summary %q", s)
	}
	if _, err := os.Stat(h.dir(st.Cgroup)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the OOM-killed stressor's cgroup: %v, want it removed", err)
	}
	if ok, err := f.Verify(context.Background()); !ok || err != nil {
		t.Errorf("verify after the OOM kill: %v, %v; want true (final)", ok, err)
	}
	// No second OOM: not from this agent, nor from one restarted.
	inject(t, f)
	forget(f.ID)
	inject(t, newFault(t, "push", f.Params))
	time.Sleep(300 * time.Millisecond)
	if st2 := state(t, f); st2.PID != st.PID {
		t.Errorf("a second Inject started stressor %d", st2.PID)
	}
	if n, err := h.oomKills(cg); err != nil || n != 0 {
		// The kill was counted in the stressor's cgroup, removed since.
		t.Errorf("OOM kills in the container after the second Inject: %d, %v", n, err)
	}
	if s2 := status(t, f); !s2.StressorOOMKilled || s2.OOMKills != 1 {
		t.Errorf("status after the agent forgot: %+v", s2)
	}
	// The container's cgroup gone too: Recover still succeeds.
	if err := h.remove(cg, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	recoverFault(t, f)
	leavesNothing(t, f, h, st.PID, st.StartTime)
}

// forget drops this agent's record of the fault's stressor, as a restart
// would.
func forget(id string) {
	regMu.Lock()
	defer regMu.Unlock()
	delete(registry, id)
}

// readFirstLine reads a helper's output: its first line is sent on first
// ("" if none), the rest read and dropped; done is closed once the helper
// is reaped.
func readFirstLine(cmd *exec.Cmd, out io.Reader) (first chan string, done chan struct{}) {
	first, done = make(chan string, 1), make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		line := ""
		if sc.Scan() {
			line = sc.Text()
		}
		first <- line
		for sc.Scan() {
		}
		_ = cmd.Wait()
		close(done)
	}()
	return first, done
}

// hog starts a process of the test's in cgroup rel, holding bytes with
// oom_score_adj adj; it ends when the test does, or when stopped. It is a
// shell, single-threaded; goHog is the test binary, as multi-threaded as
// any Go program.
func hog(t testing.TB, h hierarchy, rel string, bytes, adj int) (pid int, stop func()) {
	t.Helper()
	const script = `echo $$ > "$1" && echo "$2" > /proc/$$/oom_score_adj && x=$(head -c "$3" /dev/zero | tr '\0' x) && echo ready && read line`
	return startHog(t, exec.Command("/bin/sh", "-c", script, "hog", filepath.Join(h.dir(rel), "cgroup.procs"), strconv.Itoa(adj), strconv.Itoa(bytes)))
}

func goHog(t testing.TB, h hierarchy, rel string, bytes, adj int) (pid int, stop func()) {
	t.Helper()
	raw, _ := json.Marshal(hogConfig{Procs: filepath.Join(h.dir(rel), "cgroup.procs"), Bytes: bytes, OOMScoreAdj: adj})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envHog+"="+string(raw))
	return startHog(t, cmd)
}

func startHog(t testing.TB, cmd *exec.Cmd) (pid int, stop func()) {
	pid, stop, _ = startHogIn(t, cmd)
	return pid, stop
}

// startHogIn starts a hog, and returns its stdin too.
func startHogIn(t testing.TB, cmd *exec.Cmd) (pid int, stop func(), in io.WriteCloser) {
	t.Helper()
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
	if err := startOnForkThread(cmd); err != nil {
		t.Fatal(err)
	}
	first, done := readFirstLine(cmd, out)
	stop = func() {
		in.Close()
		<-done
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	if line := <-first; line != "ready" {
		t.Fatalf("the hog said %q", line)
	}
	return cmd.Process.Pid, stop, in
}

func TestPushingPastTheLimitReleasesAtOnceWhenAnOOMKillHappensInTheContainer(t *testing.T) {
	h := v1Hierarchy(t)
	cg := testCgroup(t, h, "release", 256*MiB)
	// A process of the container's, in a cgroup of its own with a 16 MiB
	// limit, that it exceeds when told to: an OOM kill in the container's
	// subtree, while the stressor is far below the container's limit.
	app := cg + "/app"
	if err := os.Mkdir(h.dir(app), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.dir(app), "memory.limit_in_bytes"), []byte(strconv.Itoa(16*MiB)), 0); err != nil {
		t.Fatal(err)
	}
	const script = `echo $$ > "$1" && echo ready && read line && x=$(head -c 67108864 /dev/zero | tr '\0' x) && read line`
	cmd := exec.Command("/bin/sh", "-c", script, "app", filepath.Join(h.dir(app), "cgroup.procs"))
	appPID, _, appIn := startHogIn(t, cmd)
	f := newFault(t, "release", Params{Mode: ModeContainer, Cgroup: cg, TargetBytes: 64 * MiB, RampBytesPerSecond: 32 * MiB, PushPastLimit: true, StateDir: t.TempDir()})
	recoverAtEnd(t, f)
	inject(t, f)
	st := state(t, f)
	waitFor(t, 20*time.Second, "the stressor ramping", func() bool { p, ok := readProgress(f.Dir()); return ok && p.TouchedBytes >= 16*MiB })
	if _, err := io.WriteString(appIn, "go\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the stressor's exit", func() bool { return !alive(st.PID, st.StartTime) })
	waitFor(t, 10*time.Second, "the outcome recorded", func() bool { return state(t, f).Outcome != "" })
	s := status(t, f)
	t.Logf("%s; %#v", s, s)
	// The app's OOM may kill its shell's pipe too (head, tr): 1 kill or 2.
	if s.StressorOOMKilled || s.Outcome != OutcomeReleased || s.OOMKills == 0 {
		t.Errorf("status: %#v, want released after an OOM kill", s)
	}
	if s.PeakBytes >= 128*MiB {
		t.Errorf("the stressor reached %d MiB: it did not release at once", s.PeakBytes/MiB)
	}
	if st, err := procfs.ReadStat("/proc", appPID); err == nil && st.State != 'Z' {
		t.Errorf("the app %d is alive (%c): it was not the victim", appPID, st.State)
	}
	if _, err := os.Stat(h.dir(st.Cgroup)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the released stressor's cgroup: %v, want it removed", err)
	}
	if ok, err := f.Verify(context.Background()); !ok || err != nil {
		t.Errorf("verify: %v, %v; want true (final)", ok, err)
	}
	recoverFault(t, f)
	leavesNothing(t, f, h, st.PID, st.StartTime)
}

// When another process of the container is the victim of the OOM the
// stressor causes, the kernel may OOM-kill the stressor too, within the
// same page fault of the stressor's, before the victim's memory is
// uncharged (seen here with single- and multi-threaded victims alike):
// either way the stressor ends at once, and Status tells which.
func TestPushingPastTheLimitWithAnotherVictimEndsWithOneOrTwoKills(t *testing.T) {
	h := v1Hierarchy(t)
	for name, start := range map[string]func(testing.TB, hierarchy, string, int, int) (int, func()){
		"a shell":      hog,
		"a Go program": goHog,
	} {
		t.Run(name, func(t *testing.T) {
			cg := testCgroup(t, h, "victim", 256*MiB)
			// The container's own process, the kernel's favourite victim.
			hogPID, _ := start(t, h, cg, 32*MiB, 1000)
			f := newFault(t, "victim", Params{Mode: ModeContainer, Cgroup: cg, TargetBytes: 128 * MiB, RampBytesPerSecond: 200 * MiB, PushPastLimit: true, StateDir: t.TempDir()})
			recoverAtEnd(t, f)
			inject(t, f)
			st := state(t, f)
			waitFor(t, 30*time.Second, "the stressor's exit", func() bool { return !alive(st.PID, st.StartTime) })
			waitFor(t, 10*time.Second, "the outcome recorded", func() bool { return state(t, f).Outcome != "" })
			s := status(t, f)
			t.Logf("%s", s)
			switch {
			case s.Outcome == OutcomeReleased && s.OOMKills == 1:
			case s.Outcome == OutcomeOOMKilled && s.OOMKills == 2:
			default:
				t.Errorf("status: %#v, want released after 1 OOM kill, or OOM-killed second", s)
			}
			if st, err := procfs.ReadStat("/proc", hogPID); err == nil && st.State != 'Z' {
				t.Errorf("the hog %d is alive (%c): it was not the victim", hogPID, st.State)
			}
			recoverFault(t, f)
			leavesNothing(t, f, h, st.PID, st.StartTime)
		})
	}
}

// Two faults on one container: each stressor's cgroup sits in the
// container's, and neither may count the other as the container.
func TestEveryStressorLeavesWhenTheContainersProcessesAreAllGone(t *testing.T) {
	h := v1Hierarchy(t)
	cg := testCgroup(t, h, "gone", 0)
	_, stop := hog(t, h, cg, 0, 0)
	var faults []*Fault
	for _, id := range []string{"gone-a", "gone-b"} {
		f := newFault(t, id, Params{Mode: ModeContainer, Cgroup: cg, TargetBytes: 32 * MiB, RampBytesPerSecond: 400 * MiB, StateDir: t.TempDir()})
		recoverAtEnd(t, f)
		inject(t, f)
		waitFor(t, 30*time.Second, "the stressor holding", func() bool { return status(t, f).Phase == PhaseHolding })
		faults = append(faults, f)
	}
	stop()
	for _, f := range faults {
		st := state(t, f)
		waitFor(t, 15*time.Second, "the stressor's exit", func() bool { return !alive(st.PID, st.StartTime) })
		waitFor(t, 10*time.Second, "the outcome recorded", func() bool { return state(t, f).Outcome != "" })
		s := status(t, f)
		t.Logf("%s: %s", f.ID, s)
		if s.Outcome != OutcomeTargetGone {
			t.Errorf("%s: status %+v, want the target gone", f.ID, s)
		}
		if _, err := os.Stat(h.dir(st.Cgroup)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: the stressor's cgroup: %v, want it removed so that the container's can go", f.ID, err)
		}
		if ok, err := f.Verify(context.Background()); ok || !errors.Is(err, ErrTargetGone) {
			t.Errorf("%s: verify: %v, %v; want false, ErrTargetGone", f.ID, ok, err)
		}
		if err := f.Inject(ctx30(t)); !errors.Is(err, ErrTargetGone) {
			t.Errorf("%s: inject again: %v, want ErrTargetGone", f.ID, err)
		}
		recoverFault(t, f)
		leavesNothing(t, f, h, st.PID, st.StartTime)
	}
}

// agent starts the test binary as an agent that injects the fault, and
// returns it and its stressor's pid.
func agent(t testing.TB, id string, p Params) (*exec.Cmd, int) {
	t.Helper()
	return agentUntil(t, id, p, time.Time{})
}

// agentUntil is agent with the fault bound to deadline, as the node
// agent binds every fault it injects.
func agentUntil(t testing.TB, id string, p Params, deadline time.Time) (*exec.Cmd, int) {
	t.Helper()
	raw, _ := json.Marshal(injectorConfig{ID: id, Params: p, Deadline: deadline})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envInjector+"="+string(raw))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := startOnForkThread(cmd); err != nil {
		t.Fatal(err)
	}
	first, done := readFirstLine(cmd, out)
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	line := <-first
	word, pid, _ := strings.Cut(line, " ")
	if word != "injected" {
		t.Fatalf("the agent said %q", line)
	}
	n, err := strconv.Atoi(pid)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, n
}

func TestAStressorDiesWithItsAgentKilledWithSIGKILLAndANewFaultTakesOver(t *testing.T) {
	h := v1Hierarchy(t)
	cg := testCgroup(t, h, "kill9", 0)
	p := Params{Mode: ModeContainer, Cgroup: cg, TargetBytes: 256 * MiB, RampBytesPerSecond: 64 * MiB, StateDir: t.TempDir()}
	a, pid := agent(t, "kill9", p)
	f := newFault(t, "kill9", p)
	recoverAtEnd(t, f)
	st := state(t, f)
	if st.PID != pid {
		t.Fatalf("the state records stressor %d, the agent started %d", st.PID, pid)
	}
	waitFor(t, 20*time.Second, "the stressor mid-ramp", func() bool {
		p, ok := readProgress(f.Dir())
		return ok && p.TouchedBytes >= 32*MiB
	})
	if s := status(t, f); s.Phase != PhaseRamping {
		t.Fatalf("before the kill: %+v, want ramping", s)
	}
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitFor(t, 10*time.Second, "the stressor's death with its agent", func() bool { return !alive(st.PID, st.StartTime) })
	t.Logf("the stressor was gone %v after its agent's SIGKILL", time.Since(killed).Round(time.Millisecond))

	if ok, err := f.Verify(context.Background()); ok || err != nil {
		t.Errorf("verify: %v, %v; want false, nil", ok, err)
	}
	s := status(t, f)
	t.Logf("%s", s)
	if s.Alive || s.StressorOOMKilled || s.Outcome != "" || s.Phase != "gone" {
		t.Errorf("status: %+v", s)
	}
	// A fresh agent injects again: a new stressor.
	inject(t, f)
	st2 := state(t, f)
	if st2.PID == st.PID || !alive(st2.PID, st2.StartTime) {
		t.Errorf("after Inject: stressor %d (the dead one %d)", st2.PID, st.PID)
	}
	if ok, err := f.Verify(context.Background()); !ok || err != nil {
		t.Errorf("verify: %v, %v; want true", ok, err)
	}
	recoverFault(t, f)
	leavesNothing(t, f, h, st2.PID, st2.StartTime)
}

// A stressor ends at its fault's deadline by its own clock, even when its
// agent hangs and cannot recover it: it releases everything, exits, and
// says why in its progress file.
func TestAStressorReleasesAndExitsAtItsDeadlineWhenItsAgentHangs(t *testing.T) {
	h := v1Hierarchy(t)
	cg := testCgroup(t, h, "deadline", 0)
	p := Params{Mode: ModeContainer, Cgroup: cg, TargetBytes: 64 * MiB, RampBytesPerSecond: 400 * MiB, StateDir: t.TempDir()}
	deadline := time.Now().Add(4 * time.Second)
	a, _ := agentUntil(t, "deadline", p, deadline)
	if err := a.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	f := newFault(t, "deadline", p)
	recoverAtEnd(t, f)
	st := state(t, f)
	waitFor(t, 20*time.Second, "the stressor holding", func() bool { return status(t, f).Phase == PhaseHolding })
	waitFor(t, time.Until(deadline)+10*time.Second, "the stressor's exit at its deadline", func() bool { return !alive(st.PID, st.StartTime) })
	off := time.Since(deadline)
	t.Logf("the stressor of a hung agent exited %+v after its deadline", off.Round(time.Millisecond))
	if off < -50*time.Millisecond || off > time.Second {
		t.Errorf("the stressor exited %s after its deadline, want within 1 s and not before", off)
	}
	if s := status(t, f); s.Outcome != OutcomeDeadline || s.Alive {
		t.Errorf("status: %+v, want outcome %q", s, OutcomeDeadline)
	}
	recoverFault(t, f)
	leavesNothing(t, f, h, st.PID, st.StartTime)
}

func TestRecoverKillsALiveOrphanStressorByPidAndStartTime(t *testing.T) {
	h := v1Hierarchy(t)
	cg := testCgroup(t, h, "orphan", 0)
	p := Params{Mode: ModeContainer, Cgroup: cg, TargetBytes: 64 * MiB, RampBytesPerSecond: 400 * MiB, StateDir: t.TempDir()}
	// An agent that hangs: its stressor lives on, no child of this one.
	a, pid := agent(t, "orphan", p)
	if err := a.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	f := newFault(t, "orphan", p)
	recoverAtEnd(t, f)
	st := state(t, f)
	waitFor(t, 20*time.Second, "the stressor holding", func() bool { return status(t, f).Phase == PhaseHolding })
	if ok, err := f.Verify(context.Background()); !ok || err != nil {
		t.Errorf("verify of the orphan: %v, %v; want true", ok, err)
	}
	inject(t, f)
	if st2 := state(t, f); st2.PID != pid {
		t.Errorf("Inject replaced the live orphan %d by %d", pid, st2.PID)
	}
	recoverFault(t, f)
	leavesNothing(t, f, h, st.PID, st.StartTime)
}

func TestSweepRecoversTheFaultsNoAgentClaimsAndOnlyThem(t *testing.T) {
	h := v1Hierarchy(t)
	cg := testCgroup(t, h, "sweep", 0)
	stateDir := t.TempDir()
	p := Params{Mode: ModeContainer, Cgroup: cg, TargetBytes: 32 * MiB, RampBytesPerSecond: 400 * MiB, StateDir: stateDir}
	a, _ := agent(t, "lost", p)
	if err := a.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	lost := newFault(t, "lost", p)
	recoverAtEnd(t, lost)
	kept := newFault(t, "kept", p)
	recoverAtEnd(t, kept)
	inject(t, kept)
	lostSt, keptSt := state(t, lost), state(t, kept)

	swept, err := Sweep(ctx30(t), stateDir, func(id string) bool { return id == "kept" })
	if err != nil {
		t.Fatal(err)
	}
	if len(swept) != 1 || swept[0] != "lost" {
		t.Errorf("swept %v, want [lost]", swept)
	}
	leavesNothing(t, lost, h, lostSt.PID, lostSt.StartTime)
	// Long enough for the kept stressor to look at the container again:
	// the lost one's going must not read to it as the container's.
	time.Sleep(3 * watchPeriod)
	if !alive(keptSt.PID, keptSt.StartTime) || !h.exists(keptSt.Cgroup) {
		t.Error("Sweep touched the claimed fault")
	}
	if ok, err := kept.Verify(context.Background()); !ok || err != nil {
		t.Errorf("verify of the claimed fault: %v, %v", ok, err)
	}
	recoverFault(t, kept)
	leavesNothing(t, kept, h, keptSt.PID, keptSt.StartTime)
}

func TestNodeModeMakesACgroupLimitedToTheTargetAndHoldsIt(t *testing.T) {
	h := v1Hierarchy(t)
	parent := testCgroup(t, h, "node", 0)
	f := newFault(t, "node", Params{Mode: ModeNode, Cgroup: parent, TargetBytes: 128 * MiB, RampBytesPerSecond: 400 * MiB, StateDir: t.TempDir()})
	recoverAtEnd(t, f)
	inject(t, f)
	st := state(t, f)
	if want := parent + "/faultline-memstress-node"; st.Cgroup != want {
		t.Errorf("own cgroup %s, want %s", st.Cgroup, want)
	}
	limit := readUint(t, filepath.Join(h.dir(st.Cgroup), "memory.limit_in_bytes"))
	if want := 128*MiB + headroom(128*MiB); limit != want {
		t.Errorf("own cgroup's limit %d, want %d (target + headroom)", limit, want)
	}
	waitFor(t, 30*time.Second, "the stressor holding", func() bool { return status(t, f).Phase == PhaseHolding })
	usage := readUint(t, filepath.Join(h.dir(st.Cgroup), "memory.usage_in_bytes"))
	adj := readUint(t, "/proc/"+strconv.Itoa(st.PID)+"/oom_score_adj")
	t.Logf("node mode: limit %d MiB, usage %d MiB, VmRSS %d MiB, oom_score_adj %d; %s", limit/MiB, usage/MiB, procStatus(t, st.PID, "VmRSS")/MiB, adj, status(t, f))
	if usage < 128*MiB {
		t.Errorf("own cgroup's usage %d, want at least 128 MiB", usage)
	}
	if adj != 1000 {
		t.Errorf("the node-mode stressor's oom_score_adj is %d, want 1000", adj)
	}
	time.Sleep(500 * time.Millisecond)
	if s := status(t, f); !s.Alive || s.OOMKills != 0 {
		t.Errorf("the stressor within its headroom: %+v", s)
	}
	recoverFault(t, f)
	leavesNothing(t, f, h, st.PID, st.StartTime)
}

// v2Hierarchy is a cgroup v2 hierarchy: /sys/fs/cgroup on a unified host,
// else the hybrid one at /sys/fs/cgroup/unified.
func v2Hierarchy(t testing.TB) hierarchy {
	t.Helper()
	testenv.RequireRoot(t, "make cgroups")
	for _, dir := range []string{DefaultV2Root, DefaultV2Root + "/unified"} {
		if h, err := probeHierarchy(dir); err == nil && h.Version == 2 {
			return h
		}
	}
	testenv.Unavailable(t, "no cgroup v2 hierarchy at %s or %s/unified", DefaultV2Root, DefaultV2Root)
	return hierarchy{}
}

func TestOnCgroupV2TheStressorRunsInAChildOfTheContainersCgroup(t *testing.T) {
	h := v2Hierarchy(t)
	b, _ := os.ReadFile(filepath.Join(h.Root, "cgroup.controllers"))
	hasMemory := strings.Contains(" "+string(b)+" ", " memory ")
	t.Logf("cgroup v2 at %s, controllers %q", h.Root, strings.TrimSpace(string(b)))
	cg := testCgroup(t, h, "v2", 0)
	_, _ = hog(t, h, cg, 0, 0)
	f := newFault(t, "v2", Params{Mode: ModeContainer, Cgroup: cg, TargetBytes: 64 * MiB, RampBytesPerSecond: 400 * MiB, StateDir: t.TempDir(), CgroupRoot: h.Root})
	recoverAtEnd(t, f)
	inject(t, f)
	st := state(t, f)
	if st.CgroupVersion != 2 || st.Cgroup != cg+"/faultline-memstress-v2" {
		t.Errorf("state: %+v", st)
	}
	cgf, _ := os.ReadFile(cgroupFileOf(st.PID))
	if !strings.Contains(string(cgf), "0::"+st.Cgroup+"\n") {
		t.Errorf("the stressor's cgroups: %q, want 0::%s", cgf, st.Cgroup)
	}
	waitFor(t, 30*time.Second, "the stressor holding", func() bool { return status(t, f).Phase == PhaseHolding })
	s := status(t, f)
	t.Logf("%s; %#v", s, s)
	if rss := procStatus(t, st.PID, "VmRSS"); rss < 64*MiB {
		t.Errorf("VmRSS %d, want at least 64 MiB", rss)
	}
	recoverFault(t, f)
	leavesNothing(t, f, h, st.PID, st.StartTime)

	// Pushing past a limit there is none of is refused, and leaves nothing.
	push := newFault(t, "v2push", Params{Mode: ModeContainer, Cgroup: cg, TargetBytes: 16 * MiB, RampBytesPerSecond: 400 * MiB, PushPastLimit: true, StateDir: t.TempDir(), CgroupRoot: h.Root})
	if err := push.Inject(ctx30(t)); err == nil || !strings.HasPrefix(err.Error(), "pushPastLimit: ") {
		t.Errorf("pushing past no limit: %v, want a pushPastLimit error", err)
	}
	recoverFault(t, push)
	leavesNothing(t, push, h, 0, 0)

	// Node mode limits its cgroup: it needs the memory controller.
	parent := testCgroup(t, h, "v2node", 0)
	node := newFault(t, "v2node", Params{Mode: ModeNode, Cgroup: parent, TargetBytes: 16 * MiB, RampBytesPerSecond: 400 * MiB, StateDir: t.TempDir(), CgroupRoot: h.Root})
	err := node.Inject(ctx30(t))
	t.Logf("node mode on cgroup v2 (memory controller: %v): %v", hasMemory, err)
	if hasMemory {
		if err != nil {
			t.Fatal(err)
		}
		nst := state(t, node)
		if l := readUint(t, filepath.Join(h.dir(nst.Cgroup), "memory.max")); l != 16*MiB+headroom(16*MiB) {
			t.Errorf("memory.max %d", l)
		}
	} else if err == nil {
		t.Error("node mode without the memory controller: no error")
	}
	recoverFault(t, node)
	leavesNothing(t, node, h, 0, 0)
}

// BenchmarkStressorOverhead measures what the stressor holds beyond its
// target (VmHWM - target, and its cgroup's peak - target) and how long it
// takes to get there at an unbounded ramp. The stressor is the test binary,
// or the executable $FAULTLINE_TEST_STRESSOR names (faultline-agent, say).
func BenchmarkStressorOverhead(b *testing.B) {
	h := v1Hierarchy(b)
	cg := testCgroup(b, h, "bench", 0)
	const target = 256 * MiB
	var hwm, anon, cgPeak, toHolding, ramp float64
	for i := 0; i < b.N; i++ {
		f := newFault(b, "bench-"+strconv.Itoa(i), Params{Mode: ModeContainer, Cgroup: cg, TargetBytes: target, RampBytesPerSecond: 1 << 40, StateDir: b.TempDir(), Stressor: os.Getenv("FAULTLINE_TEST_STRESSOR")})
		begin := time.Now()
		inject(b, f)
		st := state(b, f)
		var p Progress
		waitFor(b, 60*time.Second, "the stressor holding", func() bool {
			var ok bool
			p, ok = readProgress(f.Dir())
			return ok && p.Phase == PhaseHolding
		})
		toHolding += float64(time.Since(begin).Milliseconds())
		// From its go (just before Inject recorded it) to its report of
		// holding, by the stressor's clock.
		ramp += float64(p.Time.Sub(st.Started).Milliseconds())
		hwm += float64(procStatus(b, st.PID, "VmHWM") - target)
		anon += float64(procStatus(b, st.PID, "RssAnon") - target)
		cgPeak += float64(readUint(b, filepath.Join(h.dir(st.Cgroup), "memory.max_usage_in_bytes")) - target)
		recoverFault(b, f)
	}
	n := float64(b.N)
	b.ReportMetric(hwm/n, "VmHWM-over-target-bytes")
	b.ReportMetric(anon/n, "RssAnon-over-target-bytes")
	b.ReportMetric(cgPeak/n, "cgroup-peak-over-target-bytes")
	b.ReportMetric(toHolding/n, "inject-to-holding-ms")
	b.ReportMetric(ramp/n, "ramp-ms")
}

func TestTheStressorWaitsForItsGoThenReportsOnStdoutAndInItsProgressFile(t *testing.T) {
	h := v1Hierarchy(t)
	cg := testCgroup(t, h, "direct", 0)
	own := cg + "/" + CgroupName("direct")
	if err := h.create(own, 0); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st := State{Mode: ModeContainer, CgroupVersion: 1, CgroupRoot: h.Root, Cgroup: own, Watch: cg}
	args := stressorArgs(st, Params{Mode: ModeContainer, TargetBytes: 24 * MiB, RampBytesPerSecond: 12 * MiB}, dir, 0, time.Time{})
	start := func() (*exec.Cmd, io.WriteCloser, *bufio.Scanner) {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd, in, bufio.NewScanner(out)
	}
	next := func(sc *bufio.Scanner) Progress {
		t.Helper()
		if !sc.Scan() {
			t.Fatalf("the stressor's stdout ended: %v", sc.Err())
		}
		var p Progress
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatalf("a progress line %q: %v", sc.Text(), err)
		}
		return p
	}

	// No go: it allocates nothing, and leaves.
	cmd, in, sc := start()
	if p := next(sc); p.Phase != PhaseStarting || p.PID != cmd.Process.Pid {
		t.Fatalf("first line %+v", p)
	}
	in.Close()
	if err := cmd.Wait(); err == nil {
		t.Error("a stressor given no go exited 0")
	}

	cmd, in, sc = start()
	p := next(sc)
	if p.Phase != PhaseStarting || p.PID != cmd.Process.Pid || p.TouchedBytes != 0 {
		t.Fatalf("first line %+v", p)
	}
	if b, _ := os.ReadFile(cgroupFileOf(p.PID)); !strings.Contains(string(b), ":memory:"+own+"\n") {
		t.Errorf("before its go, the stressor is not in its cgroup: %q", b)
	}
	if rss := procStatus(t, p.PID, "VmRSS"); rss > 16*MiB {
		t.Errorf("before its go, the stressor holds %d MiB", rss/MiB)
	}
	if _, err := in.Write([]byte{'g'}); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	var ramping int
	for p.Phase != PhaseHolding {
		p = next(sc)
		t.Logf("%6v %s %d MiB touched, %d MiB resident", time.Since(begin).Round(time.Millisecond), p.Phase, p.TouchedBytes/MiB, p.ResidentBytes/MiB)
		if p.Phase == PhaseRamping {
			ramping++
		}
	}
	if ramping == 0 {
		t.Error("no ramping line before holding")
	}
	var file Progress
	if err := readJSON(filepath.Join(dir, progressFile), &file); err != nil {
		t.Fatal(err)
	}
	if file.Phase != PhaseHolding || file.TouchedBytes != 24*MiB || file.PID != p.PID {
		t.Errorf("progress file %+v", file)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if err := h.remove(own, 5*time.Second); err != nil {
		t.Error(err)
	}
}
