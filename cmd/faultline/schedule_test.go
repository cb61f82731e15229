package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

const scheduleDoc = `apiVersion: faultline.dev/v1alpha1
kind: Schedule
metadata: {name: nightly, namespace: default}
spec:
  schedule: "30 2 * * 1-5"
  timeZone: Europe/Paris
  template:
    gameday:
      steps:
      - name: cut
        experiment:
          targets: {nodes: {names: [isolated-0]}}
          faults:
          - {name: cut, type: NetworkLoss, duration: 90s, networkLoss: {lossPercent: 100, towardAPIServer: true}}
          objectives:
          - {name: short, expr: "nodes.maxNotReadySeconds <= 60"}
`

func TestValidateASchedule(t *testing.T) {
	tests := map[string]struct {
		from, to string
		want     []string // empty: valid
	}{
		"a valid schedule is valid":                         {},
		"a cron that does not parse names spec.schedule":    {from: `"30 2 * * 1-5"`, to: `"61 2 * * 1-5"`, want: []string{"spec.schedule"}},
		"an unknown time zone names spec.timeZone":          {from: "Europe/Paris", to: "Europe/Atlantis", want: []string{"spec.timeZone", "unknown time zone"}},
		"a gameday with no steps names the steps":           {from: scheduleDoc[strings.Index(scheduleDoc, "      steps:"):], to: "      steps: []\n", want: []string{"spec.template.gameday.steps"}},
		"an objective that does not compile names the step": {from: "nodes.maxNotReadySeconds <= 60", to: "nodes.maxNotReadySeconds <=", want: []string{"spec.template.gameday.steps[0].experiment"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "schedule.yaml")
			if err := os.WriteFile(f, []byte(strings.Replace(scheduleDoc, tc.from, tc.to, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := runRoot("validate", "-f", f)
			if len(tc.want) == 0 {
				if err != nil || !strings.Contains(out, "valid schedule") {
					t.Fatalf("%v\n%s", err, out)
				}
				return
			}
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != exitInvalid {
				t.Fatalf("err %v, want exit %d", err, exitInvalid)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v lacks %q", err, w)
				}
			}
		})
	}
}

func TestPrintSchedules(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s := v1alpha1.Schedule{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "chaos", CreationTimestamp: metav1.NewTime(now.Add(-time.Hour))},
		Spec: v1alpha1.ScheduleSpec{Schedule: "0 * * * *"},
		Status: v1alpha1.ScheduleStatus{ActiveCount: 1, LastScheduleTime: &metav1.Time{Time: now.Add(-time.Minute)},
			LastVerdicts: []v1alpha1.ScheduleRunResult{{Verdict: v1alpha1.VerdictFailed}}}}
	var b bytes.Buffer
	printSchedules(&b, []v1alpha1.Schedule{s}, now)
	for _, w := range []string{"nightly", "0 * * * *", "UTC", "1m0s ago", "Failed", "1h0m0s"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("%q lacks %q", b.String(), w)
		}
	}
}
