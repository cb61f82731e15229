// Package nettest gives root tests a private network: two network
// namespaces joined by a veth pair, and probes between them. Traffic
// between them never reaches the host or any other address.
package nettest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"faultline.dev/faultline/internal/testenv"
)

// Pair is two network namespaces joined by a veth pair: A (10.123.0.1, on
// va) and B (10.123.0.2, on vb), named for the test process.
type Pair struct {
	A, B         string // namespace names
	AIP, BIP     netip.Addr
	APath, BPath string
}

// NewPair makes a pair, removed when the test ends.
func NewPair(t testing.TB) *Pair {
	t.Helper()
	testenv.RequireRoot(t, "make network namespaces")
	id := fmt.Sprintf("%d-%d", os.Getpid()%100000, time.Now().UnixNano()%100000)
	p := &Pair{A: "flt-a-" + id, B: "flt-b-" + id, AIP: netip.MustParseAddr("10.123.0.1"), BIP: netip.MustParseAddr("10.123.0.2")}
	p.APath, p.BPath = "/run/netns/"+p.A, "/run/netns/"+p.B
	for _, n := range []string{p.A, p.B} {
		if out, err := exec.Command("ip", "netns", "add", n).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v %s", n, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n).Run() })
	}
	run := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	run("link", "add", "va", "netns", p.A, "type", "veth", "peer", "name", "vb", "netns", p.B)
	run("-n", p.A, "addr", "add", "10.123.0.1/24", "dev", "va")
	run("-n", p.B, "addr", "add", "10.123.0.2/24", "dev", "vb")
	for _, x := range [][2]string{{p.A, "va"}, {p.B, "vb"}, {p.A, "lo"}, {p.B, "lo"}} {
		run("-n", x[0], "link", "set", x[1], "up")
	}
	return p
}

// In runs f on a thread inside the named namespace: sockets made there
// stay there.
func In(t testing.TB, name string, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic(err)
		}
	}()
	f()
}

// Serve answers UDP echo in B until the test ends; it returns the address.
func Serve(t testing.TB, p *Pair) string {
	t.Helper()
	var srv net.PacketConn
	In(t, p.B, func() {
		var err error
		if srv, err = net.ListenPacket("udp4", netip.AddrPortFrom(p.BIP, 0).String()); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { srv.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			k, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = srv.WriteTo(buf[:k], from)
		}
	}()
	return srv.LocalAddr().String()
}

// Client is a UDP socket of A's, connected to addr, closed when the test
// ends.
func Client(t testing.TB, p *Pair, addr string) *net.UDPConn {
	t.Helper()
	var cli *net.UDPConn
	In(t, p.A, func() {
		var err error
		if cli, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr))); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Echo serves UDP echo in B and probes it from A every interval until stop
// closes; it returns the times replies come back, once the first has.
func Echo(t testing.TB, p *Pair, interval time.Duration, stop <-chan struct{}) <-chan time.Time {
	t.Helper()
	cli := Client(t, p, Serve(t, p))
	replies := make(chan time.Time, 1<<16)
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := cli.Read(buf); err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // a refused send surfaces here too
			}
			select {
			case replies <- time.Now():
			default:
			}
		}
	}()
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_, _ = cli.Write([]byte("probe")) // EPERM while dropped on output
			}
		}
	}()
	// Traffic flows before any fault.
	select {
	case <-replies:
	case <-time.After(5 * time.Second):
		t.Fatal("no echo from B within 5 s, before any fault")
	}
	return replies
}

// Drain empties replies of what was in flight, until none comes for quiet.
func Drain(replies <-chan time.Time, quiet time.Duration) {
	for {
		select {
		case <-replies:
		case <-time.After(quiet):
			return
		}
	}
}
