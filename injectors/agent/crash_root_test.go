//go:build root

package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/utils/clock"

	"faultline.dev/faultline/injectors"
	"faultline.dev/faultline/injectors/ledger"
	"faultline.dev/faultline/injectors/netloss"
	"faultline.dev/faultline/injectors/signal"
	"faultline.dev/faultline/injectors/signal/signaltest"
	"faultline.dev/faultline/internal/nettest"
)

// The test binary doubles as a minimal agent: FAULTLINE_TEST_AGENT=inject
// injects one network-loss fault and waits to be killed; =resume resumes
// from the ledger and enforces deadlines until nothing is active. The
// rollout-* modes inject a signal fault (crash_rollout_root_test.go). It
// also stands in for a container's main process (rollouttest).
func init() {
	signaltest.RunTargetIfAsked()
	mode := os.Getenv("FAULTLINE_TEST_AGENT")
	if mode == "" {
		return
	}
	os.Exit(testAgent(mode, os.Getenv("FAULTLINE_TEST_LEDGER"), os.Getenv("FAULTLINE_TEST_NETNS"), os.Getenv("FAULTLINE_TEST_DEADLINE")))
}

func testAgent(mode, dir, netns, deadline string) int {
	l, err := ledger.Open(dir)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	e := &Engine{Ledger: l, Clock: clock.RealClock{}, Factories: map[string]injectors.Factory{"NetworkLoss": netloss.New, "Rollout": signal.New}}
	ctx := context.Background()
	if strings.HasPrefix(mode, "rollout-") {
		return testRolloutAgent(ctx, e, mode, os.Getenv("FAULTLINE_TEST_PARAMS"), deadline)
	}
	switch mode {
	case "inject":
		dl, _ := time.Parse(time.RFC3339Nano, deadline)
		params, _ := json.Marshal(netloss.Params{Netns: netns, LossPercent: 100})
		if _, err := e.Reconcile(ctx, []Desired{{ID: "crash-test", Type: "NetworkLoss", Params: params, StartAt: time.Now(), Deadline: dl}}); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("injected")
		select {}
	case "resume":
		if err := e.Resume(ctx); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("resumed")
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go e.RunDeadlines(ctx, nil, func(err error) { fmt.Println("error:", err) })
		for {
			active := false
			for _, en := range l.List() {
				active = active || en.Active()
			}
			if !active {
				fmt.Println("all recovered")
				return 0
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return 2
}

func startTestAgent(t *testing.T, mode, dir, ns string, deadline time.Time, env ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FAULTLINE_TEST_AGENT="+mode, "FAULTLINE_TEST_LEDGER="+dir,
		"FAULTLINE_TEST_NETNS="+ns, "FAULTLINE_TEST_DEADLINE="+deadline.Format(time.RFC3339Nano))
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, bufio.NewScanner(out)
}

func expectLine(t *testing.T, sc *bufio.Scanner, want string) {
	t.Helper()
	if !sc.Scan() {
		t.Fatalf("agent ended before printing %q", want)
	}
	if got := sc.Text(); got != want {
		t.Fatalf("agent printed %q, want %q", got, want)
	}
}

func TestAnAgentKilledMidFaultIsRecoveredOnTimeByTheNextOne(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root to make a network namespace; run it as root (make test does)")
	}
	ns := fmt.Sprintf("flt-crash-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	nsPath := "/run/netns/" + ns
	dir := t.TempDir()
	deadline := time.Now().Add(3 * time.Second)

	first, out := startTestAgent(t, "inject", dir, nsPath, deadline)
	expectLine(t, out, "injected")
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	if tables, _ := netloss.Tables(nsPath); len(tables) != 1 {
		t.Fatalf("after the kill -9 the fault's table should still be there: %v", tables)
	}

	_, out2 := startTestAgent(t, "resume", dir, nsPath, deadline)
	expectLine(t, out2, "resumed")
	if tables, _ := netloss.Tables(nsPath); len(tables) != 1 {
		t.Fatalf("the restarted agent should hold the fault until its deadline: %v", tables)
	}
	expectLine(t, out2, "all recovered")
	late := time.Since(deadline)
	t.Logf("recovered %s after the deadline", late.Round(time.Millisecond))
	if late < 0 {
		t.Errorf("recovered %s before the deadline", -late)
	}
	if tables, _ := netloss.Tables(nsPath); len(tables) != 0 {
		t.Errorf("left behind: %v", tables)
	}
	nft, _ := exec.Command("ip", "netns", "exec", ns, "nft", "list", "tables").CombinedOutput()
	if strings.Contains(string(nft), netloss.TablePrefix) {
		t.Errorf("nft still lists a faultline table: %s", nft)
	}
}

// An agent killed with -9 and never restarted (its DaemonSet deleted, its
// node's agent gone for good) still ends its network loss on time: the
// kernel expires the rules at the deadline. Probes every 10 ms across a
// veth pair measure when packets pass again; the table is still there then,
// so no process ended it.
func TestALossWhoseAgentIsKilledAndNeverRestartedEndsAtItsDeadline(t *testing.T) {
	p := nettest.NewPair(t)
	stop := make(chan struct{})
	defer close(stop)
	replies := nettest.Echo(t, p, 10*time.Millisecond, stop)
	deadline := time.Now().Add(4 * time.Second)
	agent, out := startTestAgent(t, "inject", t.TempDir(), p.APath, deadline)
	expectLine(t, out, "injected")
	if err := agent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = agent.Wait()
	nettest.Drain(replies, 100*time.Millisecond)
	var back time.Time
	select {
	case back = <-replies:
	case <-time.After(time.Until(deadline) + 5*time.Second):
		t.Fatal("packets still dropped 5 s after the deadline, with no agent left")
	}
	if tables, _ := netloss.Tables(p.APath); len(tables) != 1 {
		t.Fatalf("the fault's table when packets passed again: %v, want still in place (the kernel, not a process, ended it)", tables)
	}
	off := back.Sub(deadline)
	t.Logf("no agent alive; packets passed again %+v after the deadline", off.Round(time.Millisecond))
	if off < -time.Second || off > time.Second {
		t.Errorf("packets passed again %s after the deadline, want within ±1 s", off)
	}
}
