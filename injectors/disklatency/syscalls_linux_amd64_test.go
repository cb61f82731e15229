package disklatency

import (
	"slices"
	"testing"
)

func TestSyscallNamesMapToX86_64Numbers(t *testing.T) {
	want := map[string]uint64{
		"fsync":           74,
		"fdatasync":       75,
		"write":           1,
		"pwrite64":        18,
		"sync_file_range": 277,
	}
	for name, nr := range want {
		if got, ok := syscallNumbers[name]; !ok || got != nr {
			t.Errorf("%s: number %d (known: %v), want %d", name, got, ok, nr)
		}
	}
	for _, name := range syscallNames {
		if _, ok := want[name]; !ok {
			t.Errorf("%s is accepted in params but not checked here", name)
		}
	}
	if len(syscallNumbers) != len(syscallNames) {
		t.Errorf("%d numbers for %d names", len(syscallNumbers), len(syscallNames))
	}
	for _, name := range DefaultSyscalls {
		if !slices.Contains(syscallNames, name) {
			t.Errorf("default %s is not an accepted name", name)
		}
	}
}

func TestATracerMatchesTheNumbersOfItsSyscalls(t *testing.T) {
	tr := newTracer("x", Params{PID: 1, StartTime: 1, Syscalls: []string{"fdatasync", "pwrite64"}}, ProcRoot)
	for nr := range tr.match {
		want := nr == 75 || nr == 18
		if tr.match[nr] != want {
			t.Errorf("syscall %d: match %v, want %v", nr, tr.match[nr], want)
		}
	}
}
