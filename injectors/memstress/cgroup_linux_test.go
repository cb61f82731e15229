package memstress

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// fakeTree writes files (path inside root → content) under a new root.
func fakeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestV1OOMKillsAreSummedOverTheContainersSubtree(t *testing.T) {
	// Cgroup v1 counts a kill in the victim's own cgroup only: the
	// stressor's kill is in its child cgroup, not in the container's.
	root := fakeTree(t, map[string]string{
		"pod/c/memory.oom_control":                          "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
		"pod/c/faultline-memstress-fl-1/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
		"pod/c/other/memory.oom_control":                    "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
		"pod/memory.oom_control":                            "oom_kill_disable 0\nunder_oom 0\noom_kill 9\n",
	})
	h := hierarchy{Version: 1, Root: root}
	n, err := h.oomKills("/pod/c")
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("OOM kills in /pod/c's subtree: %d, want 3 (2 + 1 + 0; not the parent's 9)", n)
	}
	if _, err := h.oomKills("/pod/gone"); err == nil {
		t.Error("a missing cgroup's OOM kills: no error")
	}
}

func TestV2OOMKillsAreTheContainersMemoryEvents(t *testing.T) {
	root := fakeTree(t, map[string]string{
		"pod/c/memory.events":                         "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n",
		"pod/c/faultline-memstress-fl-1/cgroup.procs": "",
		"nomem/cgroup.procs":                          "",
	})
	h := hierarchy{Version: 2, Root: root}
	if n, err := h.oomKills("/pod/c"); err != nil || n != 2 {
		t.Errorf("OOM kills: %d, %v; want 2", n, err)
	}
	// Without the memory controller, nothing is counted there.
	if n, err := h.oomKills("/nomem"); err != nil || n != 0 {
		t.Errorf("OOM kills without the controller: %d, %v; want 0, nil", n, err)
	}
}

func TestTheEffectiveLimitIsTheLowestOnTheWayToTheRoot(t *testing.T) {
	v2 := fakeTree(t, map[string]string{
		"kubepods/memory.max":         "max\n",
		"kubepods/pod/memory.max":     "536870912\n",
		"kubepods/pod/c/memory.max":   "max\n",
		"unlimited/c/memory.max":      "max\n",
		"nocontroller/c/cgroup.procs": "",
	})
	h := hierarchy{Version: 2, Root: v2}
	for rel, want := range map[string]struct {
		limit uint64
		ok    bool
	}{
		"/kubepods/pod/c": {512 << 20, true},
		"/unlimited/c":    {0, false},
		"/nocontroller/c": {0, false},
	} {
		l, ok, err := h.effectiveLimit(rel)
		if err != nil || l != want.limit || ok != want.ok {
			t.Errorf("%s: limit %d, %v, %v; want %d, %v", rel, l, ok, err, want.limit, want.ok)
		}
	}
	v1 := fakeTree(t, map[string]string{
		"pod/c/memory.stat": "cache 0\nrss 0\nhierarchical_memory_limit 268435456\nhierarchical_memsw_limit 9223372036854771712\n",
		"big/memory.stat":   "hierarchical_memory_limit 9223372036854771712\n",
	})
	h = hierarchy{Version: 1, Root: v1}
	if l, ok, err := h.effectiveLimit("/pod/c"); err != nil || !ok || l != 256<<20 {
		t.Errorf("v1 limit: %d, %v, %v; want 256 MiB", l, ok, err)
	}
	if _, ok, err := h.effectiveLimit("/big"); err != nil || ok {
		t.Errorf("v1 without a limit: %v, %v; want none", ok, err)
	}
}

func TestTheContainersProcessesLeaveOutEveryStressorsCgroup(t *testing.T) {
	root := fakeTree(t, map[string]string{
		"c/cgroup.procs":                          "10\n11\n",
		"c/sub/cgroup.procs":                      "12\n",
		"c/faultline-memstress-fl-1/cgroup.procs": "99\n",
		"c/faultline-memstress-fl-2/cgroup.procs": "98\n",
	})
	h := hierarchy{Version: 2, Root: root}
	pids, err := h.containerProcs("/c")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(pids)
	if !slices.Equal(pids, []int{10, 11, 12}) {
		t.Errorf("processes: %v, want [10 11 12]", pids)
	}
}

func TestTheStressorParsesTheArgumentsTheFaultGives(t *testing.T) {
	adj := 500
	p := Params{Mode: ModeContainer, Cgroup: "/pod/c", TargetBytes: 200 << 20, RampBytesPerSecond: 50 << 20, PushPastLimit: true, OOMScoreAdj: &adj, StateDir: "/s"}
	st := State{ID: "fl-1", Mode: ModeContainer, CgroupVersion: 1, CgroupRoot: "/sys/fs/cgroup/memory", Cgroup: "/pod/c/faultline-memstress-fl-1", Watch: "/pod/c", PushPastLimit: true, OOMKillsBefore: 3}
	deadline := time.UnixMilli(1_800_000_000_123)
	args := stressorArgs(st, p, "/s/memstress-fl-1", 320<<20, deadline)
	if args[0] != StressorCommand {
		t.Fatalf("args start with %q, not the subcommand", args[0])
	}
	c, err := parseStressorArgs(args[1:])
	if err != nil {
		t.Fatal(err)
	}
	want := stressorConfig{h: hierarchy{1, "/sys/fs/cgroup/memory"}, cgroup: st.Cgroup, watch: "/pod/c", target: 200 << 20, ramp: 50 << 20, pushPast: true, maxBytes: 320 << 20, oomBefore: 3, progress: "/s/memstress-fl-1/progress.json", oomScoreAdj: "500", deadline: deadline}
	if c != want {
		t.Errorf("parsed %+v\nwant   %+v", c, want)
	}
	// Node mode: no container to watch, and the first to go in a node OOM.
	st = State{ID: "fl-2", Mode: ModeNode, CgroupVersion: 2, CgroupRoot: "/sys/fs/cgroup", Cgroup: "/kubepods/faultline-memstress-fl-2", Watch: "/kubepods"}
	c, err = parseStressorArgs(stressorArgs(st, Params{Mode: ModeNode, TargetBytes: 1 << 30, RampBytesPerSecond: 1 << 20}, "/s/memstress-fl-2", 0, time.Time{})[1:])
	if err != nil {
		t.Fatal(err)
	}
	if c.watch != "" || c.pushPast || c.oomScoreAdj != "1000" || !c.deadline.IsZero() {
		t.Errorf("node mode: watch %q, push %v, oom_score_adj %q", c.watch, c.pushPast, c.oomScoreAdj)
	}
}
