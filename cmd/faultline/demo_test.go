package main

import (
	"slices"
	"testing"

	"faultline.dev/faultline/experiments/catalog"
	"faultline.dev/faultline/sandbox"
)

func TestTheDemoSandboxHasTheNodesItsScenariosNeed(t *testing.T) {
	tests := map[string]struct {
		needs        []catalog.Need
		wantIsolated int
		wantReal     int
	}{
		"scenarios on real nodes get one real node and no simulated node": {
			needs: []catalog.Need{catalog.NeedRealNode, catalog.NeedPrometheus}, wantReal: 1,
		},
		"a scenario that cuts a node off gets the default isolated nodes": {
			needs: []catalog.Need{catalog.NeedIsolatedNode}, wantIsolated: sandbox.DefaultConfig().IsolatedKwokNodes, wantReal: 1,
		},
	}
	c, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	// The demo's own scenarios run on real nodes (etcd's slow disk is
	// traced by real-0's agent), so a fresh make demo builds no kwok.
	if cfg := demoSandbox(sandbox.DefaultConfig(), c.Demo()); cfg.IsolatedKwokNodes != 0 || cfg.RealNodes == 0 || cfg.SharedKwokNodes != 0 {
		t.Errorf("the demo's sandbox has %d shared kwok, %d isolated, %d real node(s); want real nodes only", cfg.SharedKwokNodes, cfg.IsolatedKwokNodes, cfg.RealNodes)
	} else if tools := sandbox.ToolsFor(cfg); slices.Contains(tools, "kwok") {
		t.Errorf("the demo's sandbox runs %v: make demo would build kwok", tools)
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := demoSandbox(sandbox.DefaultConfig(), []catalog.Scenario{{Name: "s", Needs: tc.needs}})
			if cfg.SharedKwokNodes != 0 || cfg.IsolatedKwokNodes != tc.wantIsolated || cfg.RealNodes != tc.wantReal {
				t.Errorf("nodes: %d shared kwok, %d isolated, %d real; want 0, %d, %d",
					cfg.SharedKwokNodes, cfg.IsolatedKwokNodes, cfg.RealNodes, tc.wantIsolated, tc.wantReal)
			}
			if got := slices.Contains(sandbox.ToolsFor(cfg), "kwok"); got != (tc.wantIsolated > 0) {
				t.Errorf("kwok among the tools it runs: %v, want %v", got, tc.wantIsolated > 0)
			}
		})
	}
}
