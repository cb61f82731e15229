package memstress

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestNewValidatesParams(t *testing.T) {
	const base = `"stateDir":"/var/lib/faultline/memstress","stressor":"/usr/bin/faultline-agent"`
	tests := map[string]struct {
		params  string
		wantErr string // "" for valid
	}{
		"a container target with a ramp is valid": {
			params: `{"mode":"container","cgroup":"/kubepods/burstable/podX/abc","targetBytes":209715200,"rampBytesPerSecond":52428800,` + base + `}`,
		},
		"pushing past a container's limit is valid": {
			params: `{"mode":"container","cgroup":"/kubepods/podX/abc","targetBytes":1,"rampBytesPerSecond":1,"pushPastLimit":true,` + base + `}`,
		},
		"node mode under /kubepods is valid": {
			params: `{"mode":"node","cgroup":"/kubepods","targetBytes":1073741824,"rampBytesPerSecond":104857600,` + base + `}`,
		},
		"node mode under the root, given as nothing, is valid": {
			params: `{"mode":"node","targetBytes":4096,"rampBytesPerSecond":4096,` + base + `}`,
		},
		"an oom_score_adj of 1000 and a cgroup root are valid": {
			params: `{"mode":"container","cgroup":"/a","targetBytes":1,"rampBytesPerSecond":1,"oomScoreAdj":1000,"cgroupRoot":"/host/sys/fs/cgroup/memory",` + base + `}`,
		},
		"a ramp of 0 is refused": {
			params:  `{"mode":"container","cgroup":"/a","targetBytes":1048576,"rampBytesPerSecond":0,` + base + `}`,
			wantErr: "rampBytesPerSecond: must be above 0",
		},
		"no ramp at all is refused": {
			params:  `{"mode":"container","cgroup":"/a","targetBytes":1048576,` + base + `}`,
			wantErr: "rampBytesPerSecond:",
		},
		"a negative ramp is refused": {
			params:  `{"mode":"container","cgroup":"/a","targetBytes":1048576,"rampBytesPerSecond":-5,` + base + `}`,
			wantErr: "rampBytesPerSecond:",
		},
		"a target of 0 is refused": {
			params:  `{"mode":"container","cgroup":"/a","targetBytes":0,"rampBytesPerSecond":1,` + base + `}`,
			wantErr: "targetBytes: must be above 0",
		},
		"a target above 1 TiB is refused": {
			params:  `{"mode":"container","cgroup":"/a","targetBytes":1099511627777,"rampBytesPerSecond":1,` + base + `}`,
			wantErr: "targetBytes:",
		},
		"pushing past the limit in node mode is refused": {
			params:  `{"mode":"node","cgroup":"/kubepods","targetBytes":1,"rampBytesPerSecond":1,"pushPastLimit":true,` + base + `}`,
			wantErr: "pushPastLimit: only in container mode",
		},
		"an unknown mode is refused": {
			params:  `{"mode":"pod","cgroup":"/a","targetBytes":1,"rampBytesPerSecond":1,` + base + `}`,
			wantErr: `mode: "pod" is not`,
		},
		"no mode is refused": {
			params:  `{"cgroup":"/a","targetBytes":1,"rampBytesPerSecond":1,` + base + `}`,
			wantErr: "mode: must be set",
		},
		"container mode without a cgroup is refused": {
			params:  `{"mode":"container","targetBytes":1,"rampBytesPerSecond":1,` + base + `}`,
			wantErr: "cgroup: must be set",
		},
		"container mode on the root cgroup is refused": {
			params:  `{"mode":"container","cgroup":"/","targetBytes":1,"rampBytesPerSecond":1,` + base + `}`,
			wantErr: "cgroup: the root cgroup is no container's",
		},
		"a relative cgroup path is refused": {
			params:  `{"mode":"container","cgroup":"kubepods/podX/abc","targetBytes":1,"rampBytesPerSecond":1,` + base + `}`,
			wantErr: "cgroup: \"kubepods/podX/abc\" must start with /",
		},
		"a cgroup given as a filesystem path is refused": {
			params:  `{"mode":"container","cgroup":"/sys/fs/cgroup/memory/kubepods/x","targetBytes":1,"rampBytesPerSecond":1,` + base + `}`,
			wantErr: "cgroup: \"/sys/fs/cgroup/memory/kubepods/x\" is a filesystem path",
		},
		"a cgroup path climbing up with .. is refused": {
			params:  `{"mode":"container","cgroup":"/kubepods/../etc","targetBytes":1,"rampBytesPerSecond":1,` + base + `}`,
			wantErr: "cgroup: \"/kubepods/../etc\" holds a \"..\" element",
		},
		"a cgroup inside another memory-stress fault's is refused": {
			params:  `{"mode":"container","cgroup":"/kubepods/x/faultline-memstress-fl-1","targetBytes":1,"rampBytesPerSecond":1,` + base + `}`,
			wantErr: "cgroup: \"/kubepods/x/faultline-memstress-fl-1\" is under a memory-stress fault's own cgroup",
		},
		"an oom_score_adj above 1000 is refused": {
			params:  `{"mode":"container","cgroup":"/a","targetBytes":1,"rampBytesPerSecond":1,"oomScoreAdj":1001,` + base + `}`,
			wantErr: "oomScoreAdj: must be between -1000 and 1000",
		},
		"no state directory is refused": {
			params:  `{"mode":"container","cgroup":"/a","targetBytes":1,"rampBytesPerSecond":1}`,
			wantErr: "stateDir: must be set",
		},
		"a relative state directory is refused": {
			params:  `{"mode":"container","cgroup":"/a","targetBytes":1,"rampBytesPerSecond":1,"stateDir":"state"}`,
			wantErr: "stateDir: must be an absolute path",
		},
		"a relative stressor is refused": {
			params:  `{"mode":"container","cgroup":"/a","targetBytes":1,"rampBytesPerSecond":1,"stateDir":"/s","stressor":"faultline-agent"}`,
			wantErr: "stressor: must be an absolute path",
		},
		"a relative cgroup root is refused": {
			params:  `{"mode":"container","cgroup":"/a","targetBytes":1,"rampBytesPerSecond":1,"cgroupRoot":"sys/fs/cgroup",` + base + `}`,
			wantErr: "cgroupRoot: must be an absolute path",
		},
		"an unknown field is taken as nothing (as the other families do)": {
			params: `{"mode":"container","cgroup":"/a","targetBytes":1,"rampBytesPerSecond":1,"frobnicate":true,` + base + `}`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New("fl-0123456789abcdef", json.RawMessage(tc.params))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("want an error with %q, got none", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("want an error with %q, got %v", tc.wantErr, err)
			}
		})
	}
}

func TestFaultIDsThatCannotNameACgroupAreRefused(t *testing.T) {
	p := `{"mode":"container","cgroup":"/a","targetBytes":1,"rampBytesPerSecond":1,"stateDir":"/s"}`
	for _, id := range []string{"", "a/b", "..", ".hidden", "a b", strings.Repeat("x", 201)} {
		if _, err := New(id, json.RawMessage(p)); err == nil || !strings.HasPrefix(err.Error(), "id: ") {
			t.Errorf("id %q: want an error naming id, got %v", id, err)
		}
	}
	if _, err := New("fl-0123456789abcdef", json.RawMessage(p)); err != nil {
		t.Errorf("a controller's fault ID: %v", err)
	}
}

func TestValidateCanonicalizes(t *testing.T) {
	p, err := Params{Mode: ModeNode, TargetBytes: 1, RampBytesPerSecond: 1, StateDir: "/s/"}.Validate()
	if err != nil {
		t.Fatal(err)
	}
	if p.Cgroup != "/" || p.StateDir != "/s" || p.TargetBytes != 4096 {
		t.Errorf("canonical node params: cgroup %q, stateDir %q, target %d; want /, /s, 4096 (one page)", p.Cgroup, p.StateDir, p.TargetBytes)
	}
	p, err = Params{Mode: ModeContainer, Cgroup: "/kubepods//pod/", TargetBytes: 4097, RampBytesPerSecond: 1, StateDir: "/s"}.Validate()
	if err != nil {
		t.Fatal(err)
	}
	if p.Cgroup != "/kubepods/pod" || p.TargetBytes != 8192 {
		t.Errorf("canonical container params: cgroup %q, target %d; want /kubepods/pod, 8192", p.Cgroup, p.TargetBytes)
	}
	if got := ownCgroup("fl-1", p); got != "/kubepods/pod/faultline-memstress-fl-1" {
		t.Errorf("own cgroup in container mode: %q", got)
	}
	if got := ownCgroup("fl-1", Params{Cgroup: "/"}); got != "/faultline-memstress-fl-1" {
		t.Errorf("own cgroup under the root: %q", got)
	}
}

func TestStatusSummaries(t *testing.T) {
	const m = 1 << 20
	tests := map[string]struct {
		s    Status
		want string
	}{
		"an OOM-killed stressor says where it died": {
			Status{Injected: true, StressorOOMKilled: true, Outcome: OutcomeOOMKilled, PeakBytes: 256 * m, OOMKills: 1},
			"stressor OOM-killed at 256 MiB (1 OOM kill in the cgroup)",
		},
		"a holding stressor says what it holds": {
			Status{Injected: true, Alive: true, Phase: PhaseHolding, ResidentBytes: 201 * m, TargetBytes: 200 * m},
			"stressor holding its 200 MiB target resident (0 OOM kills in the cgroup)",
		},
		"a ramping stressor says where it goes, not each step": {
			Status{Injected: true, Alive: true, Phase: PhaseRamping, ResidentBytes: 50 * m, TargetBytes: 200 * m, OOMKills: 2},
			"stressor ramping to 200 MiB (2 OOM kills in the cgroup)",
		},
		"a stressor that released after another's OOM kill says so": {
			Status{Injected: true, Outcome: OutcomeReleased, PeakBytes: 300 * m, OOMKills: 1},
			"stressor released 300 MiB after another process's OOM kill (1 OOM kill in the cgroup)",
		},
		"no state says no stressor": {
			Status{},
			"no stressor (not injected, or recovered)",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.s.String(); got != tc.want {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}
