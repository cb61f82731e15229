//go:build root

package netloss

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"faultline.dev/faultline/internal/nettest"
)

// snapshot is a namespace's netfilter ruleset and qdiscs, as the system's
// own tools print them.
func snapshot(t *testing.T, name string) string {
	t.Helper()
	nft, err := exec.Command("ip", "netns", "exec", name, "nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset: %v %s", err, nft)
	}
	tc, err := exec.Command("ip", "netns", "exec", name, "tc", "qdisc", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("tc qdisc show: %v %s", err, tc)
	}
	return string(nft) + "\n--- qdiscs\n" + string(tc)
}

// addBystander gives a namespace a table of someone else's, which a fault
// must leave alone.
func addBystander(t *testing.T, name string) {
	t.Helper()
	script := "add table inet bystander\nadd chain inet bystander out { type filter hook output priority 0; }\nadd rule inet bystander out udp dport 9 counter accept\n"
	cmd := exec.Command("ip", "netns", "exec", name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v %s", err, out)
	}
}

// udpLoss sends n numbered probes from a to b's echo server, open loop,
// and returns the share that never came back.
func udpLoss(t *testing.T, p *nettest.Pair, n int) float64 {
	t.Helper()
	cli := nettest.Client(t, p, nettest.Serve(t, p))
	got := map[string]bool{}
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			_ = cli.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			k, err := cli.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got[string(buf[:k])] = true
			mu.Unlock()
		}
	}()
	for i := range n {
		// A drop in the output path fails the send with EPERM: that probe
		// is lost like any other.
		if _, err := fmt.Fprintf(cli, "probe-%d", i); err != nil && !errors.Is(err, syscall.EPERM) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Microsecond)
	}
	<-done
	mu.Lock()
	defer mu.Unlock()
	return 1 - float64(len(got))/float64(n)
}

func TestLossShareIsMeasuredOnRealTraffic(t *testing.T) {
	p := nettest.NewPair(t)
	if loss := udpLoss(t, p, 500); loss != 0 {
		t.Fatalf("baseline loss %.3f, want 0: the test bed itself loses packets", loss)
	}
	for _, tc := range []struct {
		name string
		onB  bool // inject in b rather than a
		spec Spec
		want float64
	}{
		{name: "30% of what a sends is lost", spec: Spec{ID: "loss30", LossPercent: 30, Direction: Egress}, want: 0.30},
		{name: "30% of what b receives is lost", onB: true, spec: Spec{ID: "in30", LossPercent: 30, Direction: Ingress}, want: 0.30},
		// Probe and echo each cross a's rules: 1 - 0.7^2 of round trips fail.
		{name: "30% both ways loses 51% of round trips", spec: Spec{ID: "both30", LossPercent: 30, Direction: Both}, want: 0.51},
		{name: "100% lost toward the peer", spec: Spec{ID: "loss100", LossPercent: 100, Peers: []netip.Prefix{netip.MustParsePrefix("10.123.0.2/32")}}, want: 1},
		{name: "a peer outside the range loses nothing", spec: Spec{ID: "other", LossPercent: 100, Peers: []netip.Prefix{netip.MustParsePrefix("10.124.0.0/16")}}, want: 0},
		{name: "0% loses nothing", spec: Spec{ID: "loss0", LossPercent: 0}, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Netns = p.APath
			if tc.onB {
				tc.spec.Netns = p.BPath
			}
			if err := Inject(tc.spec); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = Recover(tc.spec) })
			loss := udpLoss(t, p, 2000)
			if err := Recover(tc.spec); err != nil {
				t.Fatal(err)
			}
			t.Logf("requested %.0f%%, measured %.1f%% over 2000 probes", tc.spec.LossPercent, loss*100)
			if d := loss - tc.want; d < -0.03 || d > 0.03 {
				t.Errorf("measured loss %.1f%%, want %.0f%% ± 3 points", loss*100, tc.want*100)
			}
		})
	}
	if loss := udpLoss(t, p, 500); loss != 0 {
		t.Errorf("loss after recovery %.3f, want 0", loss)
	}
}

func TestFullLossTowardOnePortBlocksOnlyThatPort(t *testing.T) {
	p := nettest.NewPair(t)
	var blocked, open net.Listener
	nettest.In(t, p.B, func() {
		var err error
		if blocked, err = net.Listen("tcp4", p.BIP.String()+":0"); err != nil {
			t.Fatal(err)
		}
		if open, err = net.Listen("tcp4", p.BIP.String()+":0"); err != nil {
			t.Fatal(err)
		}
	})
	defer blocked.Close()
	defer open.Close()
	for _, l := range []net.Listener{blocked, open} {
		go func(l net.Listener) {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}(l)
	}
	port := func(l net.Listener) uint16 { return uint16(l.Addr().(*net.TCPAddr).Port) }
	dial := func(l net.Listener) error {
		var err error
		nettest.In(t, p.A, func() {
			var c net.Conn
			c, err = net.DialTimeout("tcp4", l.Addr().String(), 300*time.Millisecond)
			if err == nil {
				c.Close()
			}
		})
		return err
	}
	spec := Spec{ID: "port", Netns: p.APath, LossPercent: 100, Direction: Egress, Protocol: TCP,
		Peers: []netip.Prefix{netip.PrefixFrom(p.BIP, 32)}, Ports: []uint16{port(blocked)}}
	if err := Inject(spec); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := dial(blocked); err == nil {
			t.Errorf("connected to the blocked port %d", port(blocked))
		}
		if err := dial(open); err != nil {
			t.Errorf("the other port %d is blocked too: %v", port(open), err)
		}
	}
	if err := Recover(spec); err != nil {
		t.Fatal(err)
	}
	if err := dial(blocked); err != nil {
		t.Errorf("port %d still blocked after recovery: %v", port(blocked), err)
	}
}

func TestRecoveryLeavesTheRulesetExactlyAsItWas(t *testing.T) {
	p := nettest.NewPair(t)
	addBystander(t, p.A)
	before := snapshot(t, p.A)
	spec := Spec{ID: "exact", Netns: p.APath, LossPercent: 50, Peers: []netip.Prefix{netip.MustParsePrefix("10.123.0.0/24"), netip.MustParsePrefix("fd00::/64")}, Ports: []uint16{80, 443}}
	if err := Inject(spec); err != nil {
		t.Fatal(err)
	}
	// Injecting again (an agent retrying after a crash) must not double it.
	if err := Inject(spec); err != nil {
		t.Fatal(err)
	}
	during := snapshot(t, p.A)
	if !strings.Contains(during, "table inet faultline-exact") || strings.Count(during, "table inet faultline-exact") != 1 {
		t.Fatalf("want exactly one table faultline-exact during the fault, got:\n%s", during)
	}
	if !strings.Contains(during, "table inet bystander") {
		t.Fatalf("the bystander table is gone during the fault:\n%s", during)
	}
	if ok, err := Verify(spec); err != nil || !ok {
		t.Errorf("Verify = %v, %v; want true", ok, err)
	}
	if tables, err := Tables(p.APath); err != nil || len(tables) != 1 || tables[0] != "faultline-exact" {
		t.Errorf("Tables = %v, %v; want [faultline-exact]", tables, err)
	}
	if err := Recover(spec); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, p.A); after != before {
		t.Errorf("ruleset after recovery differs from before.\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if err := Recover(spec); err != nil {
		t.Errorf("a second recovery must be a no-op: %v", err)
	}
	if ok, _ := Verify(spec); ok {
		t.Error("Verify = true after recovery")
	}
}

func TestRecoveryOfAFaultWhoseNamespaceIsGoneSucceeds(t *testing.T) {
	p := nettest.NewPair(t)
	spec := Spec{ID: "gone", Netns: p.APath, LossPercent: 100}
	if err := Inject(spec); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "netns", "del", p.A).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if err := Recover(spec); err != nil {
		t.Errorf("recovery after the namespace went away: %v", err)
	}
}

func TestDelayUsesNetemWhereTheKernelHasIt(t *testing.T) {
	p := nettest.NewPair(t)
	before := snapshot(t, p.A)
	spec := Spec{ID: "delay", Netns: p.APath, Delay: 20 * time.Millisecond, Device: "va"}
	err := Inject(spec)
	switch {
	case errors.Is(err, ErrNoNetem):
		// This kernel lacks sch_netem: the refusal must be clear and leave
		// nothing behind.
		t.Logf("kernel without netem: %v", err)
		if !strings.Contains(err.Error(), "nftables") {
			t.Errorf("the error should say loss still works through nftables: %v", err)
		}
	case err != nil:
		t.Fatal(err)
	default:
		qd, _ := exec.Command("ip", "netns", "exec", p.A, "tc", "qdisc", "show", "dev", "va").CombinedOutput()
		if !strings.Contains(string(qd), "netem") {
			t.Errorf("no netem qdisc on va after injecting a delay: %s", qd)
		}
		if err := Recover(spec); err != nil {
			t.Fatal(err)
		}
	}
	if after := snapshot(t, p.A); after != before {
		t.Errorf("state after the delay fault differs from before.\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// The kernel ends a loss at its deadline by itself: the rules drop only
// while the deadline set's element lives, so the fault stops on time with
// no process acting (an agent killed with -9 and never restarted). Probes
// every 5 ms see the first reply after the deadline while the table is
// still in place; Recover still deletes it all.
func TestTheKernelEndsALossAtItsDeadlineWithNoProcessActing(t *testing.T) {
	p := nettest.NewPair(t)
	before := snapshot(t, p.A)
	if err := Inject(Spec{ID: "late", Netns: p.APath, LossPercent: 100, Deadline: time.Now().Add(-time.Second)}); err == nil || !strings.Contains(err.Error(), "passed already") {
		t.Errorf("a fault whose deadline has passed: %v, want refused", err)
	}
	stop := make(chan struct{})
	defer close(stop)
	replies := nettest.Echo(t, p, 5*time.Millisecond, stop)
	deadline := time.Now().Add(3 * time.Second)
	spec := Spec{ID: "deadline", Netns: p.APath, LossPercent: 100, Deadline: deadline}
	if err := Inject(spec); err != nil {
		t.Fatal(err)
	}
	injected := time.Now()
	t.Cleanup(func() { _ = Recover(spec) })
	if during := snapshot(t, p.A); !strings.Contains(during, "set "+DeadlineSet) || !strings.Contains(during, "timeout") {
		t.Errorf("no deadline set with a timeout in the fault's table:\n%s", during)
	}
	nettest.Drain(replies, 50*time.Millisecond) // what was in flight when the rules went in
	var first time.Time
	select {
	case first = <-replies:
	case <-time.After(time.Until(deadline) + 5*time.Second):
		t.Fatalf("no echo within 5 s after the deadline: the kernel kept dropping")
	}
	if ok, err := Verify(spec); err != nil || !ok {
		t.Fatalf("the table was gone when traffic came back (%v, %v): this measured a recovery, not the kernel's timeout", ok, err)
	}
	off := first.Sub(deadline)
	t.Logf("dropped from injection for %s; first echo %+v after the deadline (probes every 5 ms)", first.Sub(injected).Round(time.Millisecond), off.Round(time.Millisecond))
	if off < -time.Second || off > time.Second {
		t.Errorf("traffic came back %s after the deadline, want within ±1 s", off)
	}
	if err := Recover(spec); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, p.A); after != before {
		t.Errorf("ruleset after recovery differs from before.\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
