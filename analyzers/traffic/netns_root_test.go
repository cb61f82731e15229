//go:build root

package traffic

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"faultline.dev/faultline/internal/testenv"
)

// listenInNewNamespace makes a network namespace with lo up and listens on
// 127.0.0.1 inside it. The listening socket belongs to the namespace, so it
// is served from any thread.
func listenInNewNamespace(t *testing.T) (name string, l net.Listener) {
	t.Helper()
	name = fmt.Sprintf("flt-traffic-%d-%d", os.Getpid(), time.Now().UnixNano()%1_000_000)
	type result struct {
		l   net.Listener
		err error
	}
	res := make(chan result, 1)
	go func() {
		// NewNamed moves this thread into the new namespace; it stays
		// locked so that the thread ends with the goroutine.
		runtime.LockOSThread()
		ns, err := netns.NewNamed(name)
		if err != nil {
			res <- result{err: fmt.Errorf("new namespace %s: %w", name, err)}
			return
		}
		defer ns.Close()
		h, err := netlink.NewHandleAt(ns)
		if err != nil {
			res <- result{err: err}
			return
		}
		defer h.Close()
		lo, err := h.LinkByName("lo")
		if err == nil {
			err = h.LinkSetUp(lo)
		}
		if err != nil {
			res <- result{err: fmt.Errorf("lo up: %w", err)}
			return
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		res <- result{l, err}
	}()
	r := <-res
	t.Cleanup(func() {
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("deleting namespace %s: %v", name, err)
		}
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.l.Close() })
	return name, r.l
}

func TestRequestsLeaveFromTheNetworkNamespace(t *testing.T) {
	testenv.RequireRoot(t, "make a network namespace")
	name, l := listenInNewNamespace(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	go func() { _ = srv.Serve(l) }() // ends with Close
	t.Cleanup(func() { srv.Close() })

	// Nothing must listen on the same port in the host, so that requests
	// from the host's network are refused.
	target := "http://" + l.Addr().String() + "/"
	host, err := net.Listen("tcp", l.Addr().String())
	if err != nil {
		t.Skipf("port %s is taken in the host: %v", l.Addr(), err)
	}
	host.Close()

	inside, err := New(Config{URL: target, Rate: 100, Netns: "/run/netns/" + name}, nil)
	if err != nil {
		t.Fatal(err)
	}
	outside, err := New(Config{URL: target, Rate: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Both at once: if the namespace's thread ever ran other goroutines,
	// the host's requests could leave from the namespace and be answered.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range []*Prober{inside, outside} {
		wg.Go(func() {
			if err := p.Run(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	in, out := inside.Measure(time.Now()), outside.Measure(time.Now())
	if n := in["requests"].(int64); n < 10 || get(in, "status.200") != n || in["errors"] != int64(0) {
		t.Errorf("from inside the namespace: %v; want every request answered 200", in)
	}
	if n := out["requests"].(int64); n < 10 || get(out, "errorsByClass.refused") != n {
		t.Errorf("from the host: %v; want every request refused", out)
	}
}

func TestANamespaceThatCannotBeEnteredFailsRun(t *testing.T) {
	testenv.RequireRoot(t, "make a network namespace")
	// A mount namespace passes Validate's check (it is an nsfs file) but is
	// not a network namespace: Run must say so rather than probe from the
	// host.
	p, err := New(Config{URL: "http://127.0.0.1:1/", Rate: 1, Netns: "/proc/self/ns/mnt"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err == nil {
		t.Error("Run with a mount namespace as Netns should fail")
	}
}
