//go:build root

package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"faultline.dev/faultline/injectors"
	"faultline.dev/faultline/injectors/ledger"
	"faultline.dev/faultline/injectors/signal"
	"faultline.dev/faultline/injectors/signal/signaltest"
)

const rolloutFaultID = "crash-rollout"

// pausing is a signal fault whose Inject stops for good before sending the
// signal (before) or right after it, leaving the ledger at Injecting: the
// test kills the agent there.
type pausing struct {
	injectors.Fault
	before bool
}

func (p pausing) Inject(ctx context.Context) error {
	if p.before {
		fmt.Println("about to signal")
	} else if err := p.Fault.Inject(ctx); err != nil {
		fmt.Println("error:", err)
	} else {
		fmt.Println("signalled")
	}
	for {
		time.Sleep(time.Hour)
	}
}

// testRolloutAgent injects one signal fault with params and waits to be
// killed: mode rollout-before stops before the signal, rollout-after right
// after it (both with the ledger at Injecting), and rollout-injected once
// the ledger says Injected.
func testRolloutAgent(ctx context.Context, e *Engine, mode, params, deadline string) int {
	if mode == "rollout-before" || mode == "rollout-after" {
		e.Factories["Rollout"] = func(id string, raw json.RawMessage) (injectors.Fault, error) {
			f, err := signal.New(id, raw)
			if err != nil {
				return nil, err
			}
			return pausing{Fault: f, before: mode == "rollout-before"}, nil
		}
	}
	dl, _ := time.Parse(time.RFC3339Nano, deadline)
	d := Desired{ID: rolloutFaultID, Type: "Rollout", Params: json.RawMessage(params), StartAt: time.Now(), Deadline: dl}
	if _, err := e.Reconcile(ctx, []Desired{d}); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("injected")
	for {
		time.Sleep(time.Hour)
	}
}

// ledgerEntry reads the signal fault's entry from the ledger file, which
// the running agent holds locked (its writes are atomic).
func ledgerEntry(t *testing.T, dir string) ledger.Entry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "ledger.json"))
	if err != nil {
		t.Fatal(err)
	}
	var list []ledger.Entry
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	for _, en := range list {
		if en.ID == rolloutFaultID {
			return en
		}
	}
	t.Fatalf("no entry %s in the ledger: %s", rolloutFaultID, b)
	return ledger.Entry{}
}

func TestAnAgentKilledAroundASignalNeverSignalsALiveProcessTwice(t *testing.T) {
	tests := map[string]struct {
		mode        string // how far the first agent gets before its kill -9
		target      string // how the main process takes SIGTERM
		firstSays   string
		stateAtKill ledger.State
		sentAtKill  int // SIGTERMs the main process got from the first agent
	}{
		"killed after the ledger's Injecting write, before the signal: the next agent sends it": {
			mode: "rollout-before", target: signaltest.Survive, firstSays: "about to signal", stateAtKill: ledger.Injecting, sentAtKill: 0,
		},
		"killed right after the signal, before the ledger's Injected write: the exited main process is not signalled again": {
			mode: "rollout-after", target: signaltest.Exit, firstSays: "signalled", stateAtKill: ledger.Injecting, sentAtKill: 1,
		},
		"killed after the ledger's Injected write: the live main process is not signalled again": {
			mode: "rollout-injected", target: signaltest.Survive, firstSays: "injected", stateAtKill: ledger.Injected, sentAtKill: 1,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tg, id := signaltest.Container(t, tc.target)
			pid, start, err := signal.FindMainProcess(id)
			if err != nil {
				t.Fatal(err)
			}
			params, _ := json.Marshal(signal.Params{ContainerID: "containerd://" + id, Signal: "SIGTERM", PID: pid, StartTime: start})
			dir := t.TempDir()
			deadline := time.Now().Add(3 * time.Second)

			first, out := startTestAgent(t, tc.mode, dir, "", deadline, "FAULTLINE_TEST_PARAMS="+string(params))
			expectLine(t, out, tc.firstSays)
			if en := ledgerEntry(t, dir); en.State != tc.stateAtKill {
				t.Fatalf("ledger at the kill: %s, want %s", en.State, tc.stateAtKill)
			}
			if err := first.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = first.Wait()
			if got := tg.WaitSignals(tc.sentAtKill+1, 300*time.Millisecond); len(got) != tc.sentAtKill {
				t.Fatalf("the main process got %d SIGTERMs from the first agent, want %d", len(got), tc.sentAtKill)
			}
			if tc.target == signaltest.Exit && tg.Exited(5*time.Second) == nil {
				t.Fatal("the main process did not exit on SIGTERM")
			}

			_, out2 := startTestAgent(t, "resume", dir, "", deadline)
			expectLine(t, out2, "resumed")
			if en := ledgerEntry(t, dir); en.State != ledger.Injected || en.InjectedAt == nil || en.Error != "" {
				t.Errorf("ledger after the restart: %+v, want Injected", en)
			}
			if got := tg.WaitSignals(2, 500*time.Millisecond); len(got) != 1 {
				t.Fatalf("the main process got %d SIGTERMs in all, want exactly 1", len(got))
			}
			expectLine(t, out2, "all recovered")
			if late := time.Since(deadline); late < 0 {
				t.Errorf("recovered %s before the deadline", -late)
			}
			en := ledgerEntry(t, dir)
			if en.State != ledger.Recovered || en.InjectedAt == nil || en.RecoveredAt == nil || en.RecoveredAt.Before(deadline) || en.Error != "" {
				t.Errorf("ledger at the end: %+v, want Recovered at the deadline %s after an injection", en, deadline)
			}
			if got := tg.Signals(); len(got) != 1 {
				t.Errorf("the main process got %d SIGTERMs in all, want exactly 1", len(got))
			}
			if tc.target == signaltest.Survive && tg.Exited(0) != nil {
				t.Error("the main process that survives SIGTERM has ended")
			}
		})
	}
}
