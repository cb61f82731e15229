package sandboxtest

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// envHolder makes the test binary another test process: it holds the
// resource it names alone, says "held", and lets go when stdin closes.
const envHolder = "FAULTLINE_TEST_CLAIM_HOLDER"

func TestMain(m *testing.M) {
	if r := os.Getenv(envHolder); r != "" {
		release, err := flockClaim(Alone(Resource(r)))
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("held")
		_, _ = io.Copy(io.Discard, os.Stdin)
		release()
		os.Exit(0)
	}
	Main(m)
}

// make test runs packages side by side: a claim must hold against the
// tests of another process too.
func TestAClaimHoldsAgainstAnotherTestProcess(t *testing.T) {
	const r = ControlPlane + "-process-test"
	holder := exec.Command(os.Args[0], "-test.run=^$")
	holder.Env = append(os.Environ(), envHolder+"="+string(r))
	stdin, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "held\n" {
		t.Fatalf("the other process said %q", line)
	}
	var got atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.Run("shares what the other holds alone", func(t *testing.T) {
			Hold(t, Shared(r))
			got.Store(true)
		})
	}()
	time.Sleep(300 * time.Millisecond)
	if got.Load() {
		t.Error("a test shared a resource another process held alone")
	}
	stdin.Close()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the claim was never granted after the other process let go")
	}
	if !got.Load() {
		t.Error("the claim was never granted")
	}
}

// peak counts tests inside a section and keeps the most seen at once.
type peak struct{ now, max atomic.Int32 }

func (p *peak) enter() {
	n := p.now.Add(1)
	for m := p.max.Load(); n > m && !p.max.CompareAndSwap(m, n); m = p.max.Load() {
	}
}

func (p *peak) leave() { p.now.Add(-1) }

func TestClaimsKeepTestsThatActOnAResourceApartAndLetSharersOverlap(t *testing.T) {
	const cp = ControlPlane + "-test"
	var sharers, onNode peak
	var overlap atomic.Bool
	hold := func(p *peak) {
		p.enter()
		time.Sleep(30 * time.Millisecond)
		p.leave()
	}
	t.Run("group", func(t *testing.T) {
		for range 3 {
			t.Run("shares the control plane", func(t *testing.T) {
				Parallel(t, Shared(cp))
				hold(&sharers)
			})
		}
		for range 2 {
			t.Run("faults the node", func(t *testing.T) {
				Parallel(t, Alone(Node("test-node")), Shared(cp))
				hold(&onNode)
			})
		}
		t.Run("slows the control plane", func(t *testing.T) {
			Parallel(t, Alone(cp))
			if sharers.now.Load()+onNode.now.Load() != 0 {
				overlap.Store(true)
			}
			time.Sleep(30 * time.Millisecond)
			if sharers.now.Load()+onNode.now.Load() != 0 {
				overlap.Store(true)
			}
		})
	})
	if overlap.Load() {
		t.Error("a test ran beside one that holds the control plane alone")
	}
	if onNode.max.Load() != 1 {
		t.Errorf("%d tests held the node at once, want 1", onNode.max.Load())
	}
	// With room for all six at once (make test runs -parallel 8), the
	// three that share must have overlapped.
	if p, _ := strconv.Atoi(flag.Lookup("test.parallel").Value.String()); p >= 6 && sharers.max.Load() < 2 {
		t.Errorf("tests that share the control plane never ran side by side (at most %d at once)", sharers.max.Load())
	}
}
