package report

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"

	junit "github.com/joshdk/go-junit"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

func TestJUnit(t *testing.T) {
	tests := map[string]struct {
		exp  *v1alpha1.Experiment
		want map[string]junit.Status // objective → status
		// message is what one failure's message must contain.
		failed, message string
	}{
		"each objective is a testcase, a failed one names its measurement and bound": {
			exp: partitioned(),
			want: map[string]junit.Status{"node comes back": junit.StatusPassed, "no evictions": junit.StatusFailed,
				"fsync p99": junit.StatusPassed, "no OOM kills": junit.StatusError},
			failed: "no evictions", message: "evictions.count == 0 with evictions.count = 3",
		},
		"a failure with no judge's message is made from the expression and what it read": {
			exp: experiment("oom", withMeasurement("oom.kills", "1"),
				withObjective("no OOM kills", "oom.kills == 0", v1alpha1.VerdictFailed, ""),
				withVerdict(v1alpha1.PhaseFailed, v1alpha1.VerdictFailed, "1 of 1 objective(s) not met")),
			want:   map[string]junit.Status{"no OOM kills": junit.StatusFailed},
			failed: "no OOM kills", message: "oom.kills == 0 with oom.kills = 1",
		},
		"an experiment in Error with its objectives met gets a testcase for the error": {
			exp: experiment("broken", withObjective("fine", "evictions.count == 0", v1alpha1.VerdictPassed, ""),
				withVerdict(v1alpha1.PhaseError, v1alpha1.VerdictError, "the faults did not all happen")),
			want: map[string]junit.Status{"fine": junit.StatusPassed, "experiment": junit.StatusError},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := Write(&b, JUnit, FromExperiment(tt.exp)); err != nil {
				t.Fatal(err)
			}
			suites, err := junit.Ingest(b.Bytes())
			if err != nil {
				t.Fatalf("go-junit cannot read it: %v\n%s", err, b.String())
			}
			if len(suites) != 1 {
				t.Fatalf("%d suites, want 1", len(suites))
			}
			s := suites[0]
			if len(s.Tests) != len(tt.want) {
				t.Errorf("%d testcases, want %d", len(s.Tests), len(tt.want))
			}
			var failed, errored int
			for _, c := range s.Tests {
				if c.Classname != tt.exp.Name {
					t.Errorf("%s: classname %q, want the experiment %q", c.Name, c.Classname, tt.exp.Name)
				}
				if c.Status != tt.want[c.Name] {
					t.Errorf("%s: status %s, want %s", c.Name, c.Status, tt.want[c.Name])
				}
				if c.Name == tt.failed && (!strings.Contains(c.Message, tt.message)) {
					t.Errorf("%s: failure message %q, want it to contain %q", c.Name, c.Message, tt.message)
				}
				switch c.Status {
				case junit.StatusFailed:
					failed++
				case junit.StatusError:
					errored++
				}
			}
			// The suite's own counts must agree with its testcases, as CI
			// systems show the counts.
			var counts struct {
				Suite struct {
					Tests    int `xml:"tests,attr"`
					Failures int `xml:"failures,attr"`
					Errors   int `xml:"errors,attr"`
				} `xml:"testsuite"`
			}
			if err := xml.Unmarshal(b.Bytes(), &counts); err != nil {
				t.Fatal(err)
			}
			if c := counts.Suite; c.Tests != len(s.Tests) || c.Failures != failed || c.Errors != errored {
				t.Errorf("testsuite counts tests=%d failures=%d errors=%d, want %d, %d, %d", c.Tests, c.Failures, c.Errors, len(s.Tests), failed, errored)
			}
		})
	}
}
