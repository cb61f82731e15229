package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runRoot(args ...string) (string, error) {
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestEveryShippedExperimentIsValid(t *testing.T) {
	files, err := filepath.Glob("../../deploy/examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "kind: Experiment") {
			continue // the demo app and its variants
		}
		n++
		t.Run(filepath.Base(f), func(t *testing.T) {
			if out, err := runRoot("validate", "-f", f); err != nil {
				t.Errorf("%v\n%s", err, out)
			}
		})
	}
	if n < 4 {
		t.Fatalf("found %d example experiments, want at least 4", n)
	}
}

func TestValidate(t *testing.T) {
	valid, err := os.ReadFile("../../deploy/examples/node-partition.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		from, to string
		want     []string // empty: valid
	}{
		"the shipped example is valid":               {},
		"a loss share above 100 names the field":     {from: "lossPercent: 100", to: "lossPercent: 101", want: []string{"spec.faults[0].networkLoss.lossPercent", "between 0 and 100"}},
		"a missing duration names the field":         {from: "    duration: 90s\n", to: "", want: []string{"spec.faults[0].duration", "Required"}},
		"an unknown fault type lists the known ones": {from: "type: NetworkLoss", to: "type: Meteor", want: []string{"spec.faults[0].type", `"NetworkLoss"`}},
		"a duration over the maximum is refused":     {from: "duration: 90s", to: "duration: 48h", want: []string{"spec.faults[0].duration", "at most 24h"}},
		"an objective that does not compile":         {from: "expr: recovery.seconds < 120", to: "expr: recovery.seconds <", want: []string{"objectives[1]", "the cluster recovers within two minutes"}},
		"an unknown field is refused":                {from: "lossPercent: 100", to: "lossPercent: 100\n      lossPercentage: 5", want: []string{`unknown field "lossPercentage"`}},
		"an objective name the API server refuses":   {from: "name: the outage is bounded", to: "name: the outage's bounded", want: []string{"spec.objectives[0].name", "letters, digits"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			doc := string(valid)
			if tc.from != "" {
				if !strings.Contains(doc, tc.from) {
					t.Fatalf("test bug: %q not in the example", tc.from)
				}
				doc = strings.Replace(doc, tc.from, tc.to, 1)
			}
			path := filepath.Join(t.TempDir(), "exp.yaml")
			if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := runRoot("validate", "-f", path)
			if len(tc.want) == 0 {
				if err != nil || !strings.Contains(out, "valid") {
					t.Fatalf("err %v, output %q; want valid", err, out)
				}
				return
			}
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != exitInvalid {
				t.Fatalf("err %v, want exit code %d", err, exitInvalid)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}
