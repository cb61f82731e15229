package signal

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const (
	idA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	idB = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

func TestNewValidatesParams(t *testing.T) {
	tests := map[string]struct {
		params  string
		wantErr string // "" for valid
	}{
		"a bare container ID with SIGTERM is valid": {
			params: `{"containerID":"` + idA + `","signal":"SIGTERM","pid":42,"startTime":1234}`,
		},
		"a container ID with a containerd scheme is valid": {
			params: `{"containerID":"containerd://` + idA + `","signal":"SIGKILL","pid":42,"startTime":1234}`,
		},
		"a container ID with a cri-o scheme is valid": {
			params: `{"containerID":"cri-o://` + idA + `","signal":"SIGKILL","pid":42,"startTime":1234}`,
		},
		"another signal is refused": {
			params:  `{"containerID":"` + idA + `","signal":"SIGHUP","pid":42,"startTime":1234}`,
			wantErr: "signal: must be SIGTERM or SIGKILL",
		},
		"a signal by number is refused": {
			params:  `{"containerID":"` + idA + `","signal":"15","pid":42,"startTime":1234}`,
			wantErr: "signal: must be SIGTERM or SIGKILL",
		},
		"a missing container ID is refused": {
			params:  `{"signal":"SIGTERM","pid":42,"startTime":1234}`,
			wantErr: "containerID: must be set",
		},
		"a short container ID is refused": {
			params:  `{"containerID":"containerd://0123456789ab","signal":"SIGTERM","pid":42,"startTime":1234}`,
			wantErr: "containerID: ",
		},
		"a container ID that is not hex is refused": {
			params:  `{"containerID":"` + strings.Repeat("g", 64) + `","signal":"SIGTERM","pid":42,"startTime":1234}`,
			wantErr: "containerID: ",
		},
		"a scheme with nothing after it is refused": {
			params:  `{"containerID":"containerd://","signal":"SIGTERM","pid":42,"startTime":1234}`,
			wantErr: "containerID: ",
		},
		"a missing pid is refused": {
			params:  `{"containerID":"` + idA + `","signal":"SIGTERM","startTime":1234}`,
			wantErr: "pid: must be",
		},
		"a missing start time is refused, since it guards against pid reuse": {
			params:  `{"containerID":"` + idA + `","signal":"SIGTERM","pid":42}`,
			wantErr: "startTime: must be set",
		},
		"parameters that are not JSON are refused": {
			params:  `{"containerID":`,
			wantErr: "signal fault parameters",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f, err := New("f1", json.RawMessage(tc.params))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := f.(*Fault).Params.ContainerID; got != idA {
					t.Errorf("container ID %q, want it bare: %q", got, idA)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one starting %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseNSpid(t *testing.T) {
	tests := map[string]struct {
		status  string
		want    []int
		wantErr string
	}{
		"a process of the host namespace has one pid": {
			status: "Name:\tbash\nTgid:\t812\nPid:\t812\nNSpid:\t812\nNSpgid:\t812\n", want: []int{812},
		},
		"a container's init is pid 1 of the innermost namespace": {
			status: "Name:\tnginx\nNSpid:\t4242\t1\n", want: []int{4242, 1},
		},
		"a process of a nested namespace has one pid per level": {
			status: "Name:\tsh\nNSpid:\t4300\t17\t1\n", want: []int{4300, 17, 1},
		},
		"a status without NSpid (a kernel before 4.1) is an error": {
			status: "Name:\tsh\nPid:\t1\n", wantErr: "no NSpid line",
		},
		"an empty NSpid is an error": {
			status: "NSpid:\t\n", wantErr: "NSpid line is empty",
		},
		"a NSpid field that is not a number is an error": {
			status: "NSpid:\t12\tx\n", wantErr: `NSpid field "x"`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseNSpid([]byte(tc.status))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("NSpid %v, want %v", got, tc.want)
			}
		})
	}
}

// statLine builds a /proc/PID/stat line with that command name, state and
// start time (field 22), for fakeProc.
func statLine(pid int, comm string, state byte, start uint64) string {
	// Fields 4 to 21, then 22, then a few more.
	mid := "1 1 1 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0"
	return strconv.Itoa(pid) + " (" + comm + ") " + string(state) + " " + mid + " " + strconv.FormatUint(start, 10) + " 1234567 200 18446744073709551615 1 1 0 0 0 0 0\n"
}

func TestCgroupNames(t *testing.T) {
	tests := map[string]struct {
		file string
		want bool
	}{
		"cgroup v1 with cgroupfs paths": {
			file: "12:pids:/kubepods/besteffort/pod1234/" + idA + "\n11:memory:/kubepods/besteffort/pod1234/" + idA + "\n", want: true,
		},
		"cgroup v2 with a systemd scope": {
			file: "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12_34.slice/cri-containerd-" + idA + ".scope\n", want: true,
		},
		"a hybrid host where only the unified hierarchy names it": {
			file: "8:pids:/\n1:name=systemd:/\n0::/faultline-test/" + idA + "\n", want: true,
		},
		"another container's process": {
			file: "12:pids:/kubepods/besteffort/pod1234/" + idB + "\n0::/\n", want: false,
		},
		"a host process": {
			file: "12:pids:/\n0::/init.scope\n", want: false,
		},
		"the ID in the controller list does not count": {
			file: "12:" + idA + ":/\n", want: false,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := cgroupNames([]byte(tc.file), idA); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// proc is a fake /proc: one process per entry.
type proc struct {
	pid    int
	cgroup string // container ID in its cgroup path, or "" for the host
	nspid  string
	state  byte
	start  uint64
}

func fakeProc(t *testing.T, procs ...proc) string {
	t.Helper()
	root := t.TempDir()
	for _, p := range procs {
		dir := filepath.Join(root, strconv.Itoa(p.pid))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cg := "4:pids:/\n0::/\n"
		if p.cgroup != "" {
			cg = "4:pids:/kubepods/burstable/podx/" + p.cgroup + "\n0::/\n"
		}
		state := p.state
		if state == 0 {
			state = 'S'
		}
		files := map[string]string{
			"cgroup": cg,
			"status": "Name:\tx\nPid:\t" + strconv.Itoa(p.pid) + "\nNSpid:\t" + p.nspid + "\n",
			"stat":   statLine(p.pid, "x", state, p.start),
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Entries that are not processes are ignored.
	for _, name := range []string{"self", "sys"} {
		if err := os.Mkdir(filepath.Join(root, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestFindMainProcess(t *testing.T) {
	host := proc{pid: 1, nspid: "1", start: 1}
	tests := map[string]struct {
		procs     []proc
		wantPID   int
		wantStart uint64
		wantErr   string
	}{
		"the container's init is its main process, not its other processes": {
			procs:   []proc{host, {pid: 100, cgroup: idA, nspid: "100 1", start: 500}, {pid: 101, cgroup: idA, nspid: "101 7", start: 510}, {pid: 200, cgroup: idB, nspid: "200 1", start: 300}},
			wantPID: 100, wantStart: 500,
		},
		"a process of the container that is pid 1 of a nested namespace is not its main process": {
			procs:   []proc{{pid: 120, cgroup: idA, nspid: "120 9 1", start: 900}, {pid: 100, cgroup: idA, nspid: "100 1", start: 500}},
			wantPID: 100, wantStart: 500,
		},
		"a container that shares the host's PID namespace has no pid 1": {
			procs:   []proc{host, {pid: 100, cgroup: idA, nspid: "100", start: 500}},
			wantErr: "none of its processes [100] is pid 1 of its PID namespace",
		},
		"a main process that exited and is not yet reaped is not found": {
			procs:   []proc{{pid: 100, cgroup: idA, nspid: "100 1", state: 'Z', start: 500}},
			wantErr: "is pid 1 of its PID namespace",
		},
		"no process of the container": {
			procs:   []proc{host, {pid: 200, cgroup: idB, nspid: "200 1", start: 300}},
			wantErr: "container " + idA + ": no process on this node",
		},
		"two inits at the same depth are ambiguous": {
			procs:   []proc{{pid: 100, cgroup: idA, nspid: "100 1", start: 500}, {pid: 110, cgroup: idA, nspid: "110 1", start: 600}},
			wantErr: "processes [100 110] are each pid 1",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			pid, start, err := findMainProcess(fakeProc(t, tc.procs...), idA)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if pid != tc.wantPID || start != tc.wantStart {
				t.Errorf("pid %d start %d, want %d %d", pid, start, tc.wantPID, tc.wantStart)
			}
		})
	}
}

func TestFindMainProcessRefusesABadID(t *testing.T) {
	if _, _, err := FindMainProcess("containerd://nope"); err == nil || !strings.HasPrefix(err.Error(), "containerID: ") {
		t.Fatalf("error %v, want a containerID error", err)
	}
}

func TestFindMainProcessOfAnAbsentContainer(t *testing.T) {
	_, _, err := FindMainProcess("containerd://" + idB)
	if err == nil || !strings.Contains(err.Error(), idB+": no process on this node") {
		t.Fatalf("error %v, want no process of %s", err, idB)
	}
}

func TestTheTargetIsAliveOnlyWithItsStartTime(t *testing.T) {
	root := fakeProc(t, proc{pid: 100, cgroup: idA, nspid: "100 1", start: 500}, proc{pid: 101, cgroup: idA, nspid: "101 1", state: 'Z', start: 600})
	for _, tc := range []struct {
		pid   int
		start uint64
		want  bool
	}{{100, 500, true}, {100, 501, false}, {101, 600, false}, {102, 500, false}} {
		got, err := target(root, tc.pid, tc.start, idA)
		if err != nil || got != tc.want {
			t.Errorf("target(%d, %d) = %v, %v; want %v", tc.pid, tc.start, got, err, tc.want)
		}
	}
	if got, err := target(root, 100, 500, idB); err != nil || got {
		t.Errorf("a process of another container is a target: %v %v", got, err)
	}
}
