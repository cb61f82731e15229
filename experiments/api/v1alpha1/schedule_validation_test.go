//go:build sandbox

package v1alpha1_test

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"faultline.dev/faultline/deploy"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/schema"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

var schedules = k8sschema.GroupVersionResource{Group: "faultline.dev", Version: "v1alpha1", Resource: "schedules"}

const validScheduleDoc = `
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
        experiment:
          targets: {nodes: {names: [isolated-0]}}
          faults:
          - {name: cut, type: NetworkLoss, duration: 90s, networkLoss: {lossPercent: 100, towardAPIServer: true}}
`

// The API server refuses what the CRD's schema can see (the cron's shape,
// the zone's shape, an empty gameday, a bad nested experiment), naming the
// field; what it cannot (a cron that does not parse, a zone that does not
// exist) `faultline validate` refuses offline and the controller marks
// Invalid.
func TestTheAPIServerRejectsBadSchedulesNamingTheField(t *testing.T) {
	env := sandboxtest.Get(t)
	installCRDs(t, env)
	dyn := dynamic.NewForConfigOrDie(env.RESTConfig)
	tests := map[string]struct {
		from, to  string
		apiWant   []string // empty: the API server accepts it
		localWant string   // empty: Validate accepts it
	}{
		"a valid schedule is accepted":                            {},
		"a cron with 6 fields is refused by its shape":            {from: `"30 2 * * 1-5"`, to: `"0 30 2 * * 1-5"`, apiWant: []string{"spec.schedule", "should match"}, localWant: "spec.schedule"},
		"a cron that does not parse is refused offline only":      {from: `"30 2 * * 1-5"`, to: `"30 25 * * 1-5"`, localWant: "spec.schedule"},
		"a zone that is not a zone name is refused":               {from: "America/New_York", to: `"New York"`, apiWant: []string{"spec.timeZone", "should match"}, localWant: "spec.timeZone"},
		"an unknown zone is refused offline only":                 {from: "America/New_York", to: "Mars/Olympus_Mons", localWant: "spec.timeZone"},
		"Local is refused by both, as a CronJob's is":             {from: "America/New_York", to: "Local", apiWant: []string{"spec.timeZone", "Local is the controller's own zone"}, localWant: "spec.timeZone"},
		"a gameday with no steps is refused":                      {from: validScheduleDoc[strings.Index(validScheduleDoc, "      steps:"):], to: "      steps: []\n", apiWant: []string{"spec.template.gameday.steps", "at least 1"}, localWant: "spec.template.gameday.steps"},
		"both an experiment and a gameday are refused":            {from: "    gameday:", to: "    experiment: {targets: {nodes: {names: [a]}}, faults: [{name: x, type: NetworkLoss, duration: 1s, networkLoss: {lossPercent: 1}}]}\n    gameday:", apiWant: []string{"template: set exactly one of experiment or gameday"}, localWant: "spec.template"},
		"a bad step experiment names the nested field":            {from: "lossPercent: 100", to: "lossPercent: 101", apiWant: []string{"spec.template.gameday.steps[0].experiment.faults[0].networkLoss.lossPercent"}, localWant: "spec.template.gameday.steps[0].experiment.faults[0].networkLoss.lossPercent"},
		"a step naming more nodes than its maxTargets is refused": {from: "targets: {nodes: {names: [isolated-0]}}", to: "targets: {nodes: {names: [isolated-0, real-0]}}\n          safety: {maxTargets: 1}", apiWant: []string{"spec.template.gameday.steps[0].experiment.targets.nodes.names", "names more nodes than safety.maxTargets allows"}, localWant: "spec.template.gameday.steps[0].experiment.targets.nodes.names"},
		"an unknown onFailure is refused":                         {from: "      - name: cut\n", to: "      - name: cut\n        onFailure: Retry\n", apiWant: []string{"onFailure", "Unsupported value"}, localWant: "onFailure"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			doc := validScheduleDoc
			if tc.from != "" {
				if !strings.Contains(doc, tc.from) {
					t.Fatalf("test bug: %q not in the valid schedule", tc.from)
				}
				doc = strings.Replace(doc, tc.from, tc.to, 1)
			}
			var local v1alpha1.Schedule
			if err := yaml.UnmarshalStrict([]byte(doc), &local); err != nil {
				t.Fatal(err)
			}
			errs, err := schema.Check(&local)
			if err != nil {
				t.Fatal(err)
			}
			errs = append(errs, local.Validate()...)
			if (len(errs) == 0) != (tc.localWant == "") || (len(errs) > 0 && !strings.Contains(errs.ToAggregate().Error(), tc.localWant)) {
				t.Errorf("faultline validate: %v, want %q", errs, tc.localWant)
			}
			objs, err := deploy.Decode([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = dyn.Resource(schedules).Namespace("default").Create(ctx, objs[0], metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if len(tc.apiWant) == 0 {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted, want a rejection")
			}
			for _, w := range tc.apiWant {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("rejection lacks %q:\n%v", w, err)
				}
			}
		})
	}
}
