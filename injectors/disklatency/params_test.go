package disklatency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestNewValidatesParams(t *testing.T) {
	tests := map[string]struct {
		params  string
		wantErr string // "" for valid
	}{
		"a resolved pid with a delay is valid": {
			params: `{"pid":42,"startTime":1234,"delayMs":50}`,
		},
		"every syscall, jitter, percent and a path prefix are valid": {
			params: `{"pid":42,"startTime":1234,"syscalls":["fsync","fdatasync","write","pwrite64","sync_file_range"],"delayMs":100,"jitterMs":100,"percent":0,"pathPrefix":"/var/lib/etcd/member/wal"}`,
		},
		"a resolved process name (pid and start time filled) is valid": {
			params: `{"processName":"etcd","pid":42,"startTime":1234,"delayMs":50}`,
		},
		"the largest delay is valid": {
			params: `{"pid":42,"startTime":1234,"delayMs":10000}`,
		},
		"a delay of zero is valid": {
			params: `{"pid":42,"startTime":1234,"delayMs":0}`,
		},
		"a percent above 100 is refused": {
			params:  `{"pid":42,"startTime":1234,"delayMs":50,"percent":120}`,
			wantErr: "percent: must be between 0 and 100, got 120",
		},
		"a negative percent is refused": {
			params:  `{"pid":42,"startTime":1234,"delayMs":50,"percent":-1}`,
			wantErr: "percent: must be between 0 and 100, got -1",
		},
		"a delay above 10 s is refused": {
			params:  `{"pid":42,"startTime":1234,"delayMs":10001}`,
			wantErr: "delayMs: must be between 0 and 10000, got 10001",
		},
		"a negative delay is refused": {
			params:  `{"pid":42,"startTime":1234,"delayMs":-5}`,
			wantErr: "delayMs: must be between 0 and 10000, got -5",
		},
		"a jitter above the delay is refused": {
			params:  `{"pid":42,"startTime":1234,"delayMs":50,"jitterMs":60}`,
			wantErr: "jitterMs: must be between 0 and delayMs (50), got 60",
		},
		"a negative jitter is refused": {
			params:  `{"pid":42,"startTime":1234,"delayMs":50,"jitterMs":-1}`,
			wantErr: "jitterMs: must be between 0 and delayMs (50), got -1",
		},
		"an unknown syscall is refused": {
			params:  `{"pid":42,"startTime":1234,"delayMs":50,"syscalls":["fsync","read"]}`,
			wantErr: `syscalls: "read" is not one of fsync, fdatasync, write, pwrite64, sync_file_range`,
		},
		"a relative path prefix is refused": {
			params:  `{"pid":42,"startTime":1234,"delayMs":50,"pathPrefix":"var/lib/etcd"}`,
			wantErr: `pathPrefix: must be an absolute path, got "var/lib/etcd"`,
		},
		"a negative pid is refused": {
			params:  `{"pid":-3,"startTime":1234,"delayMs":50}`,
			wantErr: "pid: must be positive, got -3",
		},
		"no target at all is refused": {
			params:  `{"delayMs":50}`,
			wantErr: "pid: must be set",
		},
		"an unresolved process name is refused": {
			params:  `{"processName":"etcd","delayMs":50}`,
			wantErr: "pid: must be set: processName \"etcd\" is resolved",
		},
		"a pid without start time is refused, since it guards against pid reuse": {
			params:  `{"pid":42,"delayMs":50}`,
			wantErr: "startTime: must be set",
		},
		"a process name longer than comm holds is refused": {
			params:  `{"processName":"a-very-long-process-name","delayMs":50}`,
			wantErr: `processName: "a-very-long-process-name" is 24 bytes long, but /proc/PID/comm holds at most 15`,
		},
		"a percent that is not a number is refused": {
			params:  `{"pid":42,"startTime":1234,"delayMs":50,"percent":"half"}`,
			wantErr: "disk latency parameters: json: cannot unmarshal",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New("f", json.RawMessage(tc.params))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("accepted, want error %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestValidateFillsDefaults(t *testing.T) {
	f, err := New("f", json.RawMessage(`{"pid":42,"startTime":1234,"delayMs":50,"pathPrefix":"/var/lib//etcd/wal/"}`))
	if err != nil {
		t.Fatal(err)
	}
	p := f.(*Fault).Params
	if !slices.Equal(p.Syscalls, []string{"fsync", "fdatasync"}) {
		t.Errorf("syscalls %v, want the default fsync, fdatasync", p.Syscalls)
	}
	if p.Share() != 100 {
		t.Errorf("share %v, want 100 when percent is omitted", p.Share())
	}
	if p.PathPrefix != "/var/lib/etcd/wal" {
		t.Errorf("path prefix %q, want it cleaned", p.PathPrefix)
	}
	zero := 0.0
	if (Params{Percent: &zero}).Share() != 0 {
		t.Error("an explicit percent of 0 must stay 0")
	}
}

// fakeProc makes root/PID/{stat,comm,status,task/PID} for a process.
func fakeProc(t *testing.T, root string, pid int, comm string, state byte, start uint64, threads ...int) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	if err := os.MkdirAll(filepath.Join(dir, "task", strconv.Itoa(pid)), 0o755); err != nil {
		t.Fatal(err)
	}
	// Fields 3 to 22, then some more: start time is the 20th after the name.
	stat := fmt.Sprintf("%d (%s) %c 1 %d %d 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 %d 123456 42\n", pid, comm, state, pid, pid, start)
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tid := range append([]int{pid}, threads...) {
		td := filepath.Join(dir, "task", strconv.Itoa(tid))
		if err := os.MkdirAll(td, 0o755); err != nil {
			t.Fatal(err)
		}
		status := fmt.Sprintf("Name:\t%s\nState:\tS (sleeping)\nTgid:\t%d\nPid:\t%d\nTracerPid:\t%d\n", comm, pid, tid, 0)
		if err := os.WriteFile(filepath.Join(td, "status"), []byte(status), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestResolve(t *testing.T) {
	root := t.TempDir()
	fakeProc(t, root, 100, "etcd", 'S', 5000)
	fakeProc(t, root, 200, "kube-apiserver", 'S', 6000)
	fakeProc(t, root, 300, "sh", 'S', 7000)
	fakeProc(t, root, 301, "sh", 'S', 7100)
	fakeProc(t, root, 302, "sh", 'R', 7200)
	fakeProc(t, root, 400, "dead", 'Z', 8000)
	fakeProc(t, root, 500, "etcd (2) x", 'S', 9000)
	for pid, args := range map[int]string{300: "sh\x00-c\x00sleep 1", 301: "sh\x00/data/a/run.sh", 302: "sh\x00/data/b/run.sh"} {
		if err := os.WriteFile(filepath.Join(root, strconv.Itoa(pid), "cmdline"), []byte(args+"\x00"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		in        Params
		wantPID   int
		wantStart uint64
		wantErr   string
	}{
		"a process name matching one process resolves to its pid and start time": {
			in: Params{ProcessName: "etcd"}, wantPID: 100, wantStart: 5000,
		},
		"a process name with spaces and parentheses matches the whole comm": {
			in: Params{ProcessName: "etcd (2) x"}, wantPID: 500, wantStart: 9000,
		},
		"a process name matching several processes is refused, listing their pids": {
			in: Params{ProcessName: "sh"}, wantErr: "processName: 3 processes are named \"sh\" (pids [300 301 302]); set commandLineContains (or pid) to choose one",
		},
		"a command line narrows a name shared by several processes": {
			in: Params{ProcessName: "sh", CommandLineContains: "/data/b"}, wantPID: 302, wantStart: 7200,
		},
		"a command line is matched with the arguments joined by spaces": {
			in: Params{ProcessName: "sh", CommandLineContains: "-c sleep"}, wantPID: 300, wantStart: 7000,
		},
		"a command line that narrows to none is refused, naming both fields": {
			in: Params{ProcessName: "sh", CommandLineContains: "/data/c"}, wantErr: `processName, commandLineContains: no process is named "sh" with "/data/c"`,
		},
		"a command line without a process name is refused": {
			in: Params{PID: 100, CommandLineContains: "/data"}, wantErr: "commandLineContains: only with processName",
		},
		"a process name matching none is refused": {
			in: Params{ProcessName: "etc"}, wantErr: `processName: no process is named "etc"`,
		},
		"a zombie does not match": {
			in: Params{ProcessName: "dead"}, wantErr: `processName: no process is named "dead"`,
		},
		"a pid gets its start time": {
			in: Params{PID: 200}, wantPID: 200, wantStart: 6000,
		},
		"a pid that does not exist is refused": {
			in: Params{PID: 999}, wantErr: "pid: process 999: no such process",
		},
		"a zombie pid is refused": {
			in: Params{PID: 400}, wantErr: "pid: process 400 has exited",
		},
		"both a pid and a process name are refused": {
			in: Params{PID: 100, ProcessName: "etcd"}, wantErr: "pid, processName: set exactly one of them, not both",
		},
		"neither is refused": {
			in: Params{}, wantErr: "pid, processName: set exactly one of them",
		},
		"resolved params are checked and kept": {
			in: Params{PID: 100, ProcessName: "etcd", StartTime: 5000}, wantPID: 100, wantStart: 5000,
		},
		"resolved params whose pid was reused are refused": {
			in: Params{PID: 100, StartTime: 4999}, wantErr: "startTime: process 100 started at 5000, not 4999",
		},
		"resolved params whose process has another name are refused": {
			in: Params{PID: 100, ProcessName: "etcd2", StartTime: 5000}, wantErr: `processName: process 100 is "etcd", not "etcd2"`,
		},
		"the other fields are validated first": {
			in: Params{ProcessName: "etcd", DelayMs: 50, Percent: ptr(120.0)}, wantErr: "percent: must be between 0 and 100, got 120",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := resolve(root, tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.PID != tc.wantPID || got.StartTime != tc.wantStart {
				t.Fatalf("resolved to pid %d start %d, want %d %d", got.PID, got.StartTime, tc.wantPID, tc.wantStart)
			}
			if _, err := got.Validate(); err != nil {
				t.Fatalf("resolved params do not validate: %v", err)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestParseTracerPid(t *testing.T) {
	n, err := parseTracerPid([]byte("Name:\tetcd\nState:\tS (sleeping)\nTracerPid:\t4242\nUid:\t0\n"))
	if err != nil || n != 4242 {
		t.Fatalf("%d %v", n, err)
	}
	if _, err := parseTracerPid([]byte("Name:\tetcd\n")); err == nil {
		t.Fatal("a status without TracerPid parsed")
	}
	root := t.TempDir()
	fakeProc(t, root, 100, "etcd", 'S', 5000, 101, 102)
	tr, err := tracers(root, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr) != 3 || tr[100] != 0 || tr[101] != 0 || tr[102] != 0 {
		t.Fatalf("tracers %v, want three threads traced by none", tr)
	}
}

func TestUnderPrefix(t *testing.T) {
	tests := map[string]struct {
		path, prefix string
		want         bool
	}{
		"a file in the directory is under it":           {"/var/lib/etcd/member/wal/0.wal", "/var/lib/etcd/member/wal", true},
		"a file deeper down is under it":                {"/var/lib/etcd/member/wal/x/0.wal", "/var/lib/etcd", true},
		"the directory itself is under it":              {"/var/lib/etcd/member/wal", "/var/lib/etcd/member/wal", true},
		"a sibling sharing the prefix's letters is not": {"/var/lib/etcd/member/wal2/0.wal", "/var/lib/etcd/member/wal", false},
		"another directory is not":                      {"/var/lib/etcd/member/snap/db", "/var/lib/etcd/member/wal", false},
		"a pipe is not":                                 {"pipe:[1234]", "/var", false},
		"everything absolute is under the root":         {"/x", "/", true},
	}
	for name, tc := range tests {
		if got := underPrefix(tc.path, tc.prefix); got != tc.want {
			t.Errorf("%s: underPrefix(%q, %q) = %v", name, tc.path, tc.prefix, got)
		}
	}
}

// Without ptrace: what a fault says of a process that is not there.
func TestAFaultOnAGoneProcess(t *testing.T) {
	root := t.TempDir()
	f := &Fault{ID: "gone", Params: Params{PID: 999999, StartTime: 1, DelayMs: 50, Syscalls: DefaultSyscalls}, procRoot: root}
	ctx := context.Background()
	if err := f.Inject(ctx); !errors.Is(err, ErrTargetGone) {
		t.Errorf("inject: %v, want ErrTargetGone", err)
	}
	if ok, err := f.Verify(ctx); ok || !errors.Is(err, ErrTargetGone) {
		t.Errorf("verify: %v %v, want false and ErrTargetGone", ok, err)
	}
	if err := f.Recover(ctx); err != nil {
		t.Errorf("recover: %v, want nil", err)
	}
	if s, d := Stats("gone"); s != 0 || d != 0 {
		t.Errorf("stats %d %d of a fault never injected", s, d)
	}
}
