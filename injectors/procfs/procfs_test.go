package procfs

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// statLine builds a /proc/PID/stat line: fields 2 to 4, then 5 to 21, then
// the start time (field 22), then a few more.
func statLine(comm string, state byte, ppid int, start uint64) string {
	return fmt.Sprintf("42 (%s) %c %d 42 42 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 %d 1234567 200\n", comm, state, ppid, start)
}

func TestParseStat(t *testing.T) {
	tests := map[string]struct {
		line    string
		want    Stat
		wantErr string
	}{
		"a plain command name": {
			line: statLine("nginx", 'S', 1, 987654), want: Stat{Comm: "nginx", State: 'S', PPID: 1, Start: 987654},
		},
		"a command name with spaces and parentheses is all between the first '(' and the last ')'": {
			line: statLine("my (weird) cmd) 1 2 3", 'R', 7, 5550), want: Stat{Comm: "my (weird) cmd) 1 2 3", State: 'R', PPID: 7, Start: 5550},
		},
		"a command name with unbalanced parentheses": {
			line: statLine("a) b) (c", 'S', 1, 777), want: Stat{Comm: "a) b) (c", State: 'S', PPID: 1, Start: 777},
		},
		"a command name that is only a closing parenthesis": {
			line: statLine(")", 'S', 1, 77), want: Stat{Comm: ")", State: 'S', PPID: 1, Start: 77},
		},
		"a zombie": {
			line: statLine("sh", 'Z', 1, 12), want: Stat{Comm: "sh", State: 'Z', PPID: 1, Start: 12},
		},
		"a line cut short is an error": {
			line: "42 (sh) S 1 1 1", wantErr: "fields after the command name",
		},
		"a line with no command name is an error": {
			line: "42 sh S 1 1 1", wantErr: "no command name",
		},
		"a state of two letters is an error": {
			line: strings.Replace(statLine("sh", 'S', 1, 12), ") S ", ") SS ", 1), wantErr: "state (field 3)",
		},
		"a ppid that is not a number is an error": {
			line: strings.Replace(statLine("sh", 'S', 1, 12), ") S 1 ", ") S x ", 1), wantErr: "ppid (field 4)",
		},
		"a start time that is not a number is an error": {
			line: strings.Replace(statLine("sh", 'S', 1, 12), " 12 1234567 ", " x 1234567 ", 1), wantErr: "start time (field 22)",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseStat([]byte(tc.line))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("%+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestReadStatOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Fatalf("no /proc: %v", err)
	}
	st, err := ReadStat("/proc", os.Getpid())
	if err != nil || st.Start == 0 || st.PPID != os.Getppid() {
		t.Fatalf("stat of this process: %+v, %v", st, err)
	}
	tids, err := TaskIDs("/proc", os.Getpid())
	if err != nil || !slices.Contains(tids, os.Getpid()) {
		t.Fatalf("threads of this process: %v, %v", tids, err)
	}
}

func TestAProcessThatIsGoneIsErrNoProcess(t *testing.T) {
	root := t.TempDir()
	if _, err := ReadStat(root, 42); !errors.Is(err, ErrNoProcess) {
		t.Errorf("ReadStat: %v, want ErrNoProcess", err)
	}
	if _, err := TaskIDs(root, 42); !errors.Is(err, ErrNoProcess) {
		t.Errorf("TaskIDs: %v, want ErrNoProcess", err)
	}
}
