//go:build sandbox

package catalog_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"faultline.dev/faultline/experiments/catalog"
	"faultline.dev/faultline/experiments/report"
	"faultline.dev/faultline/sandbox"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// sandboxes are how each scenario's sandbox differs from the default one
// tests bring up. Each scenario runs on a sandbox of its own, side by side
// with the others: evictions and OOM kills are measured cluster-wide, so a
// scenario that evicts (memory pressure, a node lost) would count in
// another's verdict on one cluster, and the slow etcd slows everything.
var sandboxes = map[string]struct {
	name string
	edit func(*sandbox.Config)
}{
	"memory-overcommit":   {"cat-mem", func(c *sandbox.Config) { c.RealNodes, c.IsolatedKwokNodes, c.SharedKwokNodes = 1, 0, 0 }},
	"node-off-network":    {"cat-node", func(c *sandbox.Config) { c.IsolatedKwokNodes, c.SharedKwokNodes = 2, 0 }},
	"priority-preemption": {"cat-prio", func(c *sandbox.Config) { c.IsolatedKwokNodes = 0 }},
	// A real node for the leader-elected controller, whose agent traces
	// etcd on the same host, and Prometheus for the queries.
	"etcd-slow-disk": {"cat-etcd", func(c *sandbox.Config) {
		c.RealNodes, c.IsolatedKwokNodes, c.SharedKwokNodes, c.Prometheus = 1, 0, 0, true
	}},
}

// The catalog's gate: each fragile variant gets its Failed and each hardened
// one its Passed, through `faultline catalog run` as a user runs it. The
// rolling update's gate has its own test (experiments/controller), through
// a ClusterIP and an ingress; the memory overcommit's, the node loss's, the
// priority preemption's and the slow etcd's are this one. Scenarios run
// side by side, each on a sandbox of its own, their variants one after the
// other.
// FAULTLINE_GATE_SCENARIOS narrows it to a comma-separated list.
func TestTheCatalogGateFailsTheFragileVariantAndPassesTheHardenedOne(t *testing.T) {
	bins, err := sandboxtest.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	runs := sandboxtest.GateRuns(t)
	scenarios := []string{"memory-overcommit", "node-off-network", "priority-preemption", "etcd-slow-disk"}
	if only := os.Getenv("FAULTLINE_GATE_SCENARIOS"); only != "" {
		scenarios = strings.Split(only, ",")
	}
	rows := map[string]string{}
	var mu sync.Mutex
	t.Run("scenarios", func(t *testing.T) {
		for _, name := range scenarios {
			s, err := c.Get(name)
			if err != nil {
				t.Fatal(err)
			}
			t.Run(name, func(t *testing.T) {
				sandboxtest.Parallel(t)
				sb, ok := sandboxes[name]
				if !ok {
					t.Fatalf("scenario %s has no sandbox here", name)
				}
				env := sandboxtest.Own(t, sb.name, sb.edit)
				for _, v := range s.Variants {
					// One run each in CI: the fragile and the hardened
					// variant, the gate itself. The others (a budget alone,
					// the etcd latency measurements) run in make
					// gate-validity.
					if runs == 1 && v.Name != "fragile" && v.Name != "hardened" {
						continue
					}
					// A variant written for other node timings runs on a
					// sandbox with them (the upstream timeline takes ten
					// minutes).
					if v.Timings != "" && v.Timings != string(env.State.Config.Timings) {
						continue
					}
					right, codes := 0, ""
					t.Run(v.Name, func(t *testing.T) {
						for i := 0; i < runs; i++ {
							rep := filepath.Join(t.TempDir(), "gameday.json")
							cmd := exec.Command(filepath.Join(bins, "faultline"), "catalog", "run", name, "--variant", v.Name, "--sandbox", env.State.Name, "--report", rep)
							out, err := cmd.CombinedOutput()
							code := 0
							var ee *exec.ExitError
							if errors.As(err, &ee) {
								code = ee.ExitCode()
							} else if err != nil {
								t.Fatal(err)
							}
							codes += fmt.Sprintf("%d ", code)
							row := fmt.Sprintf("%s  %s  %s  %s  yes", name, v.Name, v.Expect, v.Expect)
							if code == 0 && strings.Contains(strings.Join(strings.Fields(string(out)), "  "), row) {
								right++
							} else {
								t.Errorf("run %d: exit %d, want 0 with the row %q:\n%s", i+1, code, row, out)
							}
							if check := measured[name+"/"+v.Name]; check != nil {
								check(t, readMeasurements(t, rep))
							}
						}
					})
					mu.Lock()
					rows[name+"/"+v.Name] = fmt.Sprintf("%-60s %d/%-4d %s\n", fmt.Sprintf("%s, %s (%s)", name, v.Name, v.Expect), right, runs, codes)
					mu.Unlock()
				}
			})
		}
	})
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-60s %-6s %s\n", "catalog scenario, variant (expected verdict)", "right", "exit codes")
	for _, name := range scenarios {
		s, _ := c.Get(name)
		for _, v := range s.Variants {
			table.WriteString(rows[name+"/"+v.Name])
		}
	}
	t.Log(table.String())
	if p := os.Getenv("FAULTLINE_GATE_TABLE"); p != "" {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(table.String()); err != nil {
			t.Error(err)
		}
	}
}

// readMeasurements reads the one experiment's measurements from the
// gameday report that catalog run wrote.
func readMeasurements(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g report.Gameday
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Reports) != 1 {
		t.Fatalf("%d reports in the gameday, want 1", len(g.Reports))
	}
	return g.Reports[0].Measurements
}

// measured checks, beyond the verdict, what a variant's story says was
// measured.
var measured = map[string]func(*testing.T, map[string]string){
	// The kubelet's documented order under node memory pressure: BestEffort
	// first, never a Guaranteed pod before the others; the rate, the peak
	// and the node's MemoryPressure span measured.
	"memory-overcommit/hardened": func(t *testing.T, m map[string]string) {
		t.Logf("measurements: %v", m)
		for _, key := range []string{"evictions.orderKept", "evictions.bestEffortFirst"} {
			if m[key] != "true" {
				t.Errorf("%s = %q, want true", key, m[key])
			}
		}
		for _, key := range []string{"evictions.count", "evictions.peakPerMinute", "evictions.ratePerMinute", "nodes.memoryPressure.count", "nodes.memoryPressure.longestSeconds"} {
			if v, err := strconv.ParseFloat(m[key], 64); err != nil || v <= 0 {
				t.Errorf("%s = %q, want it measured above 0", key, m[key])
			}
		}
	},
	// Four checkout pods make room for two critical ones; the scheduler,
	// not faultline, preempts them.
	"priority-preemption/fragile": func(t *testing.T, m map[string]string) {
		if m["evictions.reasons.Preempted"] != "4" {
			t.Errorf("evictions.reasons.Preempted = %q, want 4", m["evictions.reasons.Preempted"])
		}
	},
	"priority-preemption/hardened": func(t *testing.T, m map[string]string) {
		if m["evictions.count"] != "0" {
			t.Errorf("evictions.count = %q, want none: the quota keeps the burst to the room the node has", m["evictions.count"])
		}
	},
}
