package v1alpha1_test

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/schema"
)

// validSchedule is a Schedule that validates; each case breaks one field.
const validSchedule = `
apiVersion: faultline.dev/v1alpha1
kind: Schedule
metadata: {name: nightly, namespace: default}
spec:
  schedule: "30 2 * * 1-5"
  timeZone: America/New_York
  template:
    gameday:
      steps:
      - name: cut
        onFailure: Continue
        experiment:
          targets: {nodes: {names: [isolated-0]}}
          faults:
          - {name: cut, type: NetworkLoss, duration: 90s, networkLoss: {lossPercent: 100, towardAPIServer: true}}
`

// Offline, a Schedule is checked by the CRD's schema and rules (with the
// API server's code) and by Validate, for what the schema cannot say (a
// cron that parses, a zone that exists): as faultline validate checks it.
func TestScheduleValidateNamesTheField(t *testing.T) {
	tests := map[string]struct {
		from, to string
		want     string // empty: valid
	}{
		"a valid gameday schedule is valid":              {},
		"a descriptor such as @daily is valid":           {from: `"30 2 * * 1-5"`, to: `"@daily"`},
		"a cron with an hour of 25 does not parse":       {from: `"30 2 * * 1-5"`, to: `"30 25 * * 1-5"`, want: "spec.schedule"},
		"a cron with 6 fields is refused":                {from: `"30 2 * * 1-5"`, to: `"0 30 2 * * 1-5"`, want: "spec.schedule"},
		"a cron that is not cron is refused":             {from: `"30 2 * * 1-5"`, to: `"tuesdays"`, want: "spec.schedule"},
		"a zone inside the schedule is refused":          {from: `"30 2 * * 1-5"`, to: `"TZ=UTC 30 2 * *"`, want: "spec.schedule"},
		"an unknown time zone is refused":                {from: "America/New_York", to: "Mars/Olympus_Mons", want: "spec.timeZone"},
		"Local is refused, as a CronJob refuses it":      {from: "America/New_York", to: "Local", want: "spec.timeZone: Invalid value: \"Local\": Local is the controller's own zone"},
		"a gameday with no steps is refused":             {from: validSchedule[strings.Index(validSchedule, "      steps:"):], to: "      steps: []\n", want: "spec.template.gameday.steps"},
		"a bad step experiment names the nested field":   {from: "lossPercent: 100", to: "lossPercent: 101", want: "spec.template.gameday.steps[0].experiment.faults[0].networkLoss.lossPercent"},
		"an unknown onFailure is refused":                {from: "onFailure: Continue", to: "onFailure: Retry", want: "spec.template.gameday.steps[0].onFailure"},
		"an unknown concurrency policy is refused":       {from: "  timeZone:", to: "  concurrencyPolicy: Sometimes\n  timeZone:", want: "spec.concurrencyPolicy"},
		"a template with neither experiment nor gameday": {from: validSchedule[strings.Index(validSchedule, "  template:"):], to: "  template: {}\n", want: "spec.template"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			doc := strings.Replace(validSchedule, tc.from, tc.to, 1)
			var s v1alpha1.Schedule
			if err := yaml.UnmarshalStrict([]byte(doc), &s); err != nil {
				t.Fatal(err)
			}
			errs, err := schema.Check(&s)
			if err != nil {
				t.Fatal(err)
			}
			errs = append(errs, s.Validate()...)
			if tc.want == "" {
				if len(errs) > 0 {
					t.Fatalf("refused: %v", errs)
				}
				return
			}
			if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), tc.want) {
				t.Errorf("errors %v do not name %s", errs, tc.want)
			}
		})
	}
}
