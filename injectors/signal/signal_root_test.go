//go:build root

package signal

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"faultline.dev/faultline/injectors"
	"faultline.dev/faultline/injectors/procfs"
	"faultline.dev/faultline/injectors/signal/signaltest"
	"faultline.dev/faultline/internal/testenv"
)

func TestMain(m *testing.M) {
	signaltest.RunTargetIfAsked()
	os.Exit(m.Run())
}

// hierarchy returns where cgroup hierarchy version v is mounted, or stops
// the test saying why it cannot run.
func hierarchy(t *testing.T, v int) string {
	t.Helper()
	testenv.RequireRoot(t, "make cgroups and PID namespaces")
	root, err := signaltest.Hierarchy(v)
	if err != nil {
		testenv.Unavailable(t, "cgroup v%d: %v", v, err)
	}
	return root
}

// container starts a target as pid 1 of a new PID namespace in a new
// cgroup under root, and returns it with the container ID.
func container(t *testing.T, root, mode string) (*signaltest.Target, string) {
	t.Helper()
	dir, id := signaltest.Cgroup(t, root)
	tg := signaltest.Start(t, mode, true)
	move(t, tg, root, dir)
	return tg, id
}

func move(t *testing.T, tg *signaltest.Target, root, dir string) {
	t.Helper()
	err := tg.MoveTo(dir)
	if err == nil {
		return
	}
	sub, serr := os.ReadFile(root + "/cgroup.subtree_control")
	if serr != nil { // v1
		t.Fatalf("move the target %d into %s: %v", tg.PID(), dir, err)
	}
	// On a hybrid host the unified hierarchy takes processes as long as no
	// controller is enabled below its root; the kernel refuses otherwise.
	testenv.Unavailable(t, "the kernel refused to move pid %d into the cgroup v2 %s: %v (controllers enabled in %s/cgroup.subtree_control: %q)",
		tg.PID(), dir, err, root, strings.TrimSpace(string(sub)))
}

// find finds the target's container's main process, checks that it is the
// target, and returns a fault sending it sig.
func find(t *testing.T, tg *signaltest.Target, id, sig string) injectors.Fault {
	t.Helper()
	pid, start, err := FindMainProcess("containerd://" + id)
	if err != nil {
		t.Fatal(err)
	}
	if pid != tg.PID() {
		t.Fatalf("main process %d, want the target %d", pid, tg.PID())
	}
	st, err := procfs.ReadStat(ProcRoot, pid)
	if err != nil || st.Start != start {
		t.Fatalf("start time %d, /proc says %+v (%v)", start, st, err)
	}
	return newFault(t, Params{ContainerID: "containerd://" + id, Signal: sig, PID: pid, StartTime: start})
}

func newFault(t *testing.T, p Params) injectors.Fault {
	t.Helper()
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := New("rollout-test", raw)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func verify(t *testing.T, f injectors.Fault, want bool) {
	t.Helper()
	if got, err := f.Verify(context.Background()); err != nil || got != want {
		t.Errorf("Verify = %v, %v; want %v", got, err, want)
	}
}

// sigterm checks the whole path in one hierarchy: the main process is
// found, gets exactly one SIGTERM, and the container's other processes
// none.
func sigterm(t *testing.T, root string) {
	tg, id := container(t, root, signaltest.Exit)
	// Another process of the same container (as with kubectl exec): it is
	// not pid 1 of the container's namespace, and is not signalled.
	dir := filepath.Join(root, "faultline-test-"+id[:8], id)
	other := signaltest.Start(t, signaltest.Survive, false)
	move(t, other, root, dir)
	// The container is named in this hierarchy only.
	cg, err := os.ReadFile(filepath.Join(ProcRoot, strconv.Itoa(tg.PID()), "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	var in []string
	for _, line := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
		if strings.Contains(line, id) {
			in = append(in, line)
		}
	}
	v2 := strings.HasPrefix(strings.Join(in, ""), "0::")
	if _, err := os.Stat(filepath.Join(root, "cgroup.subtree_control")); len(in) != 1 || v2 != (err == nil) {
		t.Fatalf("the target's cgroups %q, want %s/... in %s alone", in, id, root)
	}
	f := find(t, tg, id, "SIGTERM")
	verify(t, f, false)
	if err := f.Inject(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := tg.WaitSignals(1, 5*time.Second); strings.Join(got, ",") != "terminated" {
		t.Fatalf("the main process recorded %q, want one SIGTERM", got)
	}
	st := tg.Exited(5 * time.Second)
	if st == nil || st.ExitCode() != 0 {
		t.Fatalf("the main process did not exit on SIGTERM: %v", st)
	}
	verify(t, f, true)
	if got := other.Signals(); len(got) != 0 {
		t.Errorf("another process of the container was signalled: %q", got)
	}
	// Injecting again (a retry) signals nothing: the process is gone.
	if err := f.Inject(context.Background()); err != nil {
		t.Errorf("a second injection: %v", err)
	}
	if err := f.Recover(context.Background()); err != nil {
		t.Errorf("Recover: %v", err)
	}
}

func TestSIGTERMReachesTheMainProcessCgroupV1(t *testing.T) {
	sigterm(t, hierarchy(t, 1))
}

func TestSIGTERMReachesTheMainProcessCgroupV2(t *testing.T) {
	sigterm(t, hierarchy(t, 2))
}

func TestSIGKILLReachesTheMainProcess(t *testing.T) {
	tg, id := container(t, hierarchy(t, 1), signaltest.Survive)
	f := find(t, tg, id, "SIGKILL")
	if err := f.Inject(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := tg.Exited(5 * time.Second)
	if st == nil {
		t.Fatal("the main process is still running after SIGKILL")
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("the main process ended %v, want killed by SIGKILL", st)
	}
	verify(t, f, true)
}

func TestAGoneMainProcessIsNotSignalled(t *testing.T) {
	tg, id := container(t, hierarchy(t, 1), signaltest.Survive)
	f := find(t, tg, id, "SIGTERM")
	tg.Kill() // the container exited before the fault's start
	verify(t, f, true)
	if err := f.Inject(context.Background()); err != nil {
		t.Fatalf("injecting on a gone process: %v, want nothing done", err)
	}
	if _, _, err := FindMainProcess(id); err == nil || !strings.Contains(err.Error(), "no process on this node") {
		t.Errorf("FindMainProcess after the exit: %v, want no process", err)
	}
}

func TestAReusedPIDIsNotSignalled(t *testing.T) {
	tg, id := container(t, hierarchy(t, 1), signaltest.Survive)
	pid, start, err := FindMainProcess(id)
	if err != nil {
		t.Fatal(err)
	}
	// The same pid with another start time is another process: the one
	// recorded exited and its pid went to this one.
	f := newFault(t, Params{ContainerID: id, Signal: "SIGTERM", PID: pid, StartTime: start - 1})
	verify(t, f, true)
	if err := f.Inject(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := tg.Signals(); len(got) != 0 {
		t.Fatalf("a process with another start time was signalled: %q", got)
	}
	if st := tg.Exited(0); st != nil {
		t.Fatalf("the process ended: %v", st)
	}
	// Nor is a process of another container with the recorded pid and
	// start time.
	f = newFault(t, Params{ContainerID: signaltest.NewID(), Signal: "SIGKILL", PID: pid, StartTime: start})
	if err := f.Inject(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := tg.Exited(300 * time.Millisecond); st != nil {
		t.Fatalf("a process of another container was killed: %v", st)
	}
}

func TestNoSuchContainer(t *testing.T) {
	testenv.RequireRoot(t, "make cgroups and PID namespaces")
	id := signaltest.NewID()
	_, _, err := FindMainProcess("containerd://" + id)
	if err == nil || !strings.Contains(err.Error(), "container "+id+": no process on this node") {
		t.Fatalf("error %v, want no process of container %s", err, id)
	}
}

func TestAContainerWithoutAPIDNamespaceOfItsOwnHasNoMainProcess(t *testing.T) {
	root := hierarchy(t, 1)
	dir, id := signaltest.Cgroup(t, root)
	tg := signaltest.Start(t, signaltest.Survive, false)
	move(t, tg, root, dir)
	_, _, err := FindMainProcess(id)
	if err == nil || !strings.Contains(err.Error(), "is pid 1 of its PID namespace") {
		t.Fatalf("error %v, want none is pid 1", err)
	}
}
