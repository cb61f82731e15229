//go:build root

package disklatency

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"faultline.dev/faultline/injectors/disklatency/disklatencytest"
	"faultline.dev/faultline/injectors/procfs"
	"faultline.dev/faultline/internal/testenv"
)

const ms = float64(time.Millisecond)

// dirs returns n copies of dir.
func dirs(dir string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = dir
	}
	return out
}

func start(t *testing.T, mode string, dirs ...string) *disklatencytest.Target {
	t.Helper()
	testenv.RequireRoot(t, "ptrace a process")
	return disklatencytest.Start(t, disklatencytest.Config{Mode: mode, Dirs: dirs})
}

// inject resolves p for the target, injects it as fault id, and recovers it
// when the test ends.
func inject(t *testing.T, id string, tg *disklatencytest.Target, p Params) *Fault {
	t.Helper()
	p.PID = tg.PID()
	p, err := Resolve(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFault(id, p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Inject(ctx); err != nil {
		t.Fatalf("inject: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.Recover(ctx); err != nil {
			t.Errorf("recover at the end: %v", err)
		}
	})
	return f
}

func recoverNow(t *testing.T, f *Fault) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Recover(ctx); err != nil {
		t.Fatalf("recover: %v", err)
	}
}

func mean(ns []int64) float64 {
	if len(ns) == 0 {
		return 0
	}
	var s float64
	for _, n := range ns {
		s += float64(n)
	}
	return s / float64(len(ns))
}

// baseline measures the target untraced, and checks its workers work.
func baseline(t *testing.T, tg *disklatencytest.Target, d time.Duration) float64 {
	t.Helper()
	r := tg.Measure(t, d)
	checkWorking(t, r)
	b := mean(r.All())
	t.Logf("baseline: %.3f ms per call over %d calls", b/ms, len(r.All()))
	return b
}

func checkWorking(t *testing.T, r disklatencytest.Report) {
	t.Helper()
	for _, w := range r.Workers {
		if w.Errors > 0 {
			t.Errorf("worker %d: %d failed calls, the last: %s", w.TID, w.Errors, w.LastErr)
		}
		if len(w.NS) == 0 {
			t.Errorf("worker %d made no call", w.TID)
		}
	}
}

// tracedBy checks that every thread of pid is traced by tracer (0: none).
func tracedBy(t *testing.T, pid, tracer int) map[int]int {
	t.Helper()
	tr, err := Tracers(pid)
	if err != nil {
		t.Fatal(err)
	}
	for tid, by := range tr {
		if by != tracer {
			t.Errorf("thread %d of %d: TracerPid %d, want %d", tid, pid, by, tracer)
		}
	}
	return tr
}

// waitUntraced waits for every thread of pid to show TracerPid 0.
func waitUntraced(t *testing.T, pid int) {
	t.Helper()
	end := time.Now().Add(5 * time.Second)
	for {
		tr, err := Tracers(pid)
		if err != nil {
			t.Fatal(err)
		}
		var traced []int
		for tid, by := range tr {
			if by != 0 {
				traced = append(traced, tid)
			}
		}
		if len(traced) == 0 {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("threads %v of %d are still traced: %v", traced, pid, tr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEveryThreadIsSlowedByTheDelayIncludingOneStartedAfterAttach(t *testing.T) {
	dir := t.TempDir()
	tg := start(t, disklatencytest.Fdatasync, dirs(dir, 3)...)
	base := baseline(t, tg, 500*time.Millisecond)

	f := inject(t, "delay-all", tg, Params{DelayMs: 50})
	tg.Mark(t)
	atAttach := tracedBy(t, tg.PID(), os.Getpid())
	extra := tg.Extra(t, dir)
	if _, ok := atAttach[extra]; ok {
		t.Fatalf("the extra worker's thread %d existed at attach", extra)
	}
	if ok, err := f.Verify(context.Background()); !ok || err != nil {
		t.Fatalf("verify after the extra thread: %v %v", ok, err)
	}

	r := tg.Measure(t, 1500*time.Millisecond)
	checkWorking(t, r)
	sawExtra := false
	for _, w := range r.Workers {
		inc := (mean(w.NS) - base) / ms
		t.Logf("thread %d: %d calls, mean %.2f ms, %.2f ms above the baseline", w.TID, len(w.NS), mean(w.NS)/ms, inc)
		// The delay is the floor (less clock slack); above it, each call
		// also pays two ptrace stops and the scheduler, which on a busy CI
		// machine (a whole sandbox running) came to 5-6 ms, and once to
		// 10.8 ms. The ceiling is there to catch a call delayed twice (at
		// entry and at exit: 100 ms), so it leaves half the delay of room.
		if inc < 45 || inc > 75 {
			t.Errorf("thread %d: latency rose by %.2f ms, want 45 to 75 ms (the 50 ms delay, less 10 %% clock slack, plus up to 25 ms of tracing and scheduling; a double delay is 100)", w.TID, inc)
		}
		if len(w.NS) < 10 {
			t.Errorf("thread %d: %d calls in 1.5 s", w.TID, len(w.NS))
		}
		sawExtra = sawExtra || w.TID == extra
	}
	if !sawExtra {
		t.Errorf("no report of the extra worker %d", extra)
	}
	seen, delayed := Stats("delay-all")
	t.Logf("stats: %d matching calls seen, %d delayed", seen, delayed)
	if delayed == 0 || delayed > seen {
		t.Errorf("stats: %d seen, %d delayed", seen, delayed)
	}
}

func TestHalfTheCallsAreSlowedAtPercent50(t *testing.T) {
	// Ten workers give some 1200 calls in 3 s: the share's standard
	// deviation is 1.4 points, so ±5 points is 3.5 of them.
	tg := start(t, disklatencytest.Fdatasync, dirs(t.TempDir(), 10)...)
	inject(t, "half", tg, Params{DelayMs: 50, Percent: ptr(50.0)})
	r := tg.Measure(t, 3*time.Second)
	checkWorking(t, r)
	all := r.All()
	slowed := 0
	for _, n := range all {
		if n >= int64(40*time.Millisecond) {
			slowed++
		}
	}
	share := 100 * float64(slowed) / float64(len(all))
	t.Logf("%d of %d calls slowed: %.1f %%", slowed, len(all), share)
	if len(all) < 400 {
		t.Fatalf("only %d calls", len(all))
	}
	if share < 45 || share > 55 {
		t.Errorf("%.1f %% of the calls slowed, want 50 %% ± 5 points", share)
	}
}

func TestRecoverRestoresLatencyAndDetachesEveryThread(t *testing.T) {
	tg := start(t, disklatencytest.Fdatasync, dirs(t.TempDir(), 3)...)
	base := baseline(t, tg, 500*time.Millisecond)
	f := inject(t, "recover", tg, Params{DelayMs: 200})
	during := tg.Measure(t, 700*time.Millisecond)
	t.Logf("during: %.2f ms per call", mean(during.All())/ms)

	// Recover while threads are held in a 200 ms delay: it must release
	// them at once, not after their delay.
	begin := time.Now()
	recoverNow(t, f)
	took := time.Since(begin)
	t.Logf("recover took %s", took.Round(time.Microsecond))
	if took > 150*time.Millisecond {
		t.Errorf("recover took %s: held threads were not released at once", took)
	}
	tracedBy(t, tg.PID(), 0)
	if ok, err := f.Verify(context.Background()); ok || err != nil {
		t.Errorf("verify after recover: %v %v, want false, nil", ok, err)
	}
	after := tg.Measure(t, 500*time.Millisecond)
	checkWorking(t, after)
	m := mean(after.All())
	t.Logf("after: %.3f ms per call over %d calls (baseline %.3f ms)", m/ms, len(after.All()), base/ms)
	if m > base+5*ms {
		t.Errorf("after recover: %.3f ms per call, want under the baseline + 5 ms (%.3f ms)", m/ms, (base+5*ms)/ms)
	}
	if err := f.Recover(context.Background()); err != nil {
		t.Errorf("a second recover: %v", err)
	}
}

func TestATracerKilledWithSIGKILLLeavesTheTargetRunningUntraced(t *testing.T) {
	tg := start(t, disklatencytest.Fdatasync, dirs(t.TempDir(), 3)...)
	base := baseline(t, tg, 500*time.Millisecond)
	p, err := Resolve(Params{PID: tg.PID(), DelayMs: 50})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(p)

	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), envTracer+"="+string(raw))
	helper.Stderr = os.Stderr
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = helper.Process.Kill(); _ = helper.Wait() })
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatal("the tracer helper said nothing")
	}
	word, wakerPID, _ := strings.Cut(sc.Text(), " ")
	if word != "injected" {
		t.Fatalf("the tracer helper said %q", sc.Text())
	}
	tracedBy(t, tg.PID(), helper.Process.Pid)
	during := tg.Measure(t, 500*time.Millisecond)
	t.Logf("traced by %d: %.2f ms per call", helper.Process.Pid, mean(during.All())/ms)
	if m := mean(during.All()); m < base+40*ms {
		t.Errorf("the helper's fault does not delay: %.2f ms per call", m/ms)
	}

	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	waitUntraced(t, tg.PID())
	if !tg.Alive() {
		t.Fatal("the target died with its tracer")
	}
	after := tg.Measure(t, 500*time.Millisecond)
	checkWorking(t, after)
	m := mean(after.All())
	t.Logf("after the kill: %.3f ms per call over %d calls (baseline %.3f ms)", m/ms, len(after.All()), base/ms)
	if m > base+5*ms {
		t.Errorf("after the tracer's death: %.3f ms per call, want under the baseline + 5 ms", m/ms)
	}
	// The helper's waker dies with it (PR_SET_PDEATHSIG, PTRACE_O_EXITKILL).
	end := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + wakerPID + "/stat")
		if err != nil || strings.Contains(string(b), ") Z ") {
			break
		}
		if time.Now().After(end) {
			t.Errorf("the helper's waker %s outlived it: %s", wakerPID, b)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOnlyCallsUnderThePathPrefixAreSlowed(t *testing.T) {
	root := t.TempDir()
	wal, other := filepath.Join(root, "wal"), filepath.Join(root, "wal2")
	for _, d := range []string{wal, other} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tg := start(t, disklatencytest.Fdatasync, wal, wal, other, other)
	base := baseline(t, tg, 500*time.Millisecond)
	inject(t, "prefix", tg, Params{DelayMs: 50, PathPrefix: wal})
	r := tg.Measure(t, 1500*time.Millisecond)
	checkWorking(t, r)
	for _, w := range r.Workers {
		m := mean(w.NS)
		t.Logf("thread %d in %s: %d calls, %.2f ms per call", w.TID, filepath.Base(w.Dir), len(w.NS), m/ms)
		if w.Dir == wal {
			if inc := (m - base) / ms; inc < 45 || inc > 55 {
				t.Errorf("thread %d in the prefix: latency rose by %.2f ms, want 50 ms ± 10 %%", w.TID, inc)
			}
		} else if m > base+5*ms {
			t.Errorf("thread %d outside the prefix: %.3f ms per call, want under the baseline + 5 ms", w.TID, m/ms)
		}
	}
}

func TestInjectIsIdempotentAndARebuiltFaultFindsItsTracer(t *testing.T) {
	tg := start(t, disklatencytest.Fdatasync, dirs(t.TempDir(), 2)...)
	p, err := Resolve(Params{PID: tg.PID(), DelayMs: 20})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(p)
	build := func() *Fault {
		f, err := New("rebuilt", raw)
		if err != nil {
			t.Fatal(err)
		}
		return f.(*Fault)
	}
	ctx := context.Background()
	f1 := build()
	if err := f1.Inject(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = build().Recover(ctx) })
	f2 := build()
	if err := f2.Inject(ctx); err != nil {
		t.Fatalf("a second inject: %v", err)
	}
	if ok, err := f2.Verify(ctx); !ok || err != nil {
		t.Fatalf("a rebuilt fault's verify: %v %v", ok, err)
	}
	time.Sleep(200 * time.Millisecond)
	if seen, delayed := Stats("rebuilt"); seen == 0 || delayed == 0 {
		t.Errorf("stats %d %d", seen, delayed)
	}
	// A second fault on the same process is refused: a process has one tracer.
	other, _ := NewFault("other", p)
	if err := other.Inject(ctx); err == nil || !strings.Contains(err.Error(), "traced already, by fault rebuilt") {
		t.Errorf("a second fault on the process: %v", err)
	}
	if err := build().Recover(ctx); err != nil {
		t.Fatal(err)
	}
	tracedBy(t, tg.PID(), 0)
	seen, delayed := Stats("rebuilt")
	t.Logf("kept after recover: %d seen, %d delayed", seen, delayed)
	if delayed == 0 {
		t.Error("stats lost at recover")
	}
	if ok, err := build().Verify(ctx); ok || err != nil {
		t.Errorf("verify after recover: %v %v", ok, err)
	}
	if err := build().Recover(ctx); err != nil {
		t.Errorf("recover again: %v", err)
	}
}

func TestTheTracerEndsWhenTheTargetExits(t *testing.T) {
	tg := start(t, disklatencytest.Fdatasync, dirs(t.TempDir(), 2)...)
	f := inject(t, "exits", tg, Params{DelayMs: 30})
	time.Sleep(100 * time.Millisecond)
	tg.Kill()
	ctx := context.Background()
	end := time.Now().Add(5 * time.Second)
	for !lookup("exits").ended() {
		if time.Now().After(end) {
			t.Fatal("the tracer still runs 5 s after its target's death")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if gone, err := lookup("exits").result(); !gone {
		t.Errorf("the tracer ended, but not for the target's exit: %v", err)
	}
	if ok, err := f.Verify(ctx); ok || !errors.Is(err, ErrTargetGone) {
		t.Errorf("verify: %v %v, want false and ErrTargetGone", ok, err)
	}
	if err := f.Inject(ctx); !errors.Is(err, ErrTargetGone) {
		t.Errorf("inject: %v, want ErrTargetGone", err)
	}
	if err := f.Recover(ctx); err != nil {
		t.Errorf("recover: %v", err)
	}
}

func TestGroupStopAndSignalsPassThrough(t *testing.T) {
	tg := start(t, disklatencytest.Fdatasync, dirs(t.TempDir(), 2)...)
	inject(t, "stop", tg, Params{DelayMs: 10})
	pid := tg.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Every thread goes to group-stop ('t' while traced, once listening).
	end := time.Now().Add(5 * time.Second)
	for {
		states := threadStates(t, pid)
		if !slices.ContainsFunc(states, func(s byte) bool { return s != 't' && s != 'T' }) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("thread states after SIGSTOP: %q", states)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	r := tg.Measure(t, 500*time.Millisecond)
	checkWorking(t, r)
	if m := mean(r.All()); m < 9*ms {
		t.Errorf("after SIGCONT: %.2f ms per call, want the 10 ms delay still in place", m/ms)
	}
	// SIGURG (ignored by default, used by the Go runtime) is delivered.
	for range 20 {
		_ = syscall.Kill(pid, syscall.SIGURG)
	}
	if !tg.Alive() {
		t.Fatal("the target died")
	}
}

func threadStates(t *testing.T, pid int) []byte {
	t.Helper()
	tids, err := procfs.TaskIDs(ProcRoot, pid)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, tid := range tids {
		st, err := procfs.ReadStatPath(filepath.Join(ProcRoot, strconv.Itoa(pid), "task", strconv.Itoa(tid), "stat"))
		if err == nil {
			out = append(out, st.State)
		}
	}
	return out
}

// BenchmarkTracingAtDelay0 gives the figures behind "a delay of 0 costs
// close to nothing": the same loop in the target, untraced and then traced
// with a delay of 0, in the same run, with their ratio. getpid is the worst
// case (the cheapest call, so the two stops per call dominate); fdatasync
// is the call a real fault slows. Each iteration measures both for 500 ms.
//
//	go test -tags root -run '^$' -bench TracingAtDelay0 -benchtime 3x ./injectors/disklatency/
func BenchmarkTracingAtDelay0(b *testing.B) {
	for _, mode := range []string{disklatencytest.Getpid, disklatencytest.Fdatasync} {
		b.Run(mode, func(b *testing.B) {
			testenv.RequireRoot(b, "ptrace a process")
			dir := ""
			if mode == disklatencytest.Fdatasync {
				dir = b.TempDir()
			}
			tg := disklatencytest.Start(b, disklatencytest.Config{Mode: mode, Dirs: []string{dir}})
			var untraced, traced []int64
			for i := 0; i < b.N; i++ {
				untraced = append(untraced, tg.Measure(b, 500*time.Millisecond).All()...)
				p, err := Resolve(Params{PID: tg.PID(), DelayMs: 0})
				if err != nil {
					b.Fatal(err)
				}
				f, err := NewFault(fmt.Sprintf("bench-%s-%d-%d", mode, tg.PID(), i), p)
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if err := f.Inject(ctx); err != nil {
					cancel()
					b.Fatalf("inject: %v", err)
				}
				traced = append(traced, tg.Measure(b, 500*time.Millisecond).All()...)
				err = f.Recover(ctx)
				cancel()
				if err != nil {
					b.Fatalf("recover: %v", err)
				}
			}
			if len(untraced) == 0 || len(traced) == 0 {
				b.Fatalf("the target made no call: %d untraced, %d traced", len(untraced), len(traced))
			}
			u, tr := mean(untraced), mean(traced)
			b.ReportMetric(u, "untraced-ns/call")
			b.ReportMetric(tr, "traced-ns/call")
			b.ReportMetric(tr-u, "added-ns/call")
			b.ReportMetric(tr/u, "ratio")
		})
	}
}
