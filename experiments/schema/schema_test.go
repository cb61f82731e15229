package schema

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"faultline.dev/faultline/deploy"
)

func validator(t *testing.T) *Validator {
	t.Helper()
	crds, err := deploy.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	v, err := New(crds)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func example(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile("../../deploy/examples/node-partition.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(b, &obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

func spec(o map[string]any) map[string]any { return o["spec"].(map[string]any) }
func meta(o map[string]any) map[string]any { return o["metadata"].(map[string]any) }
func firstFault(o map[string]any) map[string]any {
	return spec(o)["faults"].([]any)[0].(map[string]any)
}
func objectives(o map[string]any) []any { return spec(o)["objectives"].([]any) }

func TestTheServersRulesRunOffline(t *testing.T) {
	v := validator(t)
	tests := map[string]struct {
		edit  func(o map[string]any)
		field string // the field refused; empty: accepted
		words string
	}{
		"the shipped example is accepted": {edit: func(map[string]any) {}},
		"a loss share above 100 is refused by the schema's maximum": {
			edit:  func(o map[string]any) { firstFault(o)["networkLoss"].(map[string]any)["lossPercent"] = 101 },
			field: "spec.faults[0].networkLoss.lossPercent", words: "less than or equal to 100",
		},
		"a port given twice, in a list that is a set": {
			edit: func(o map[string]any) {
				firstFault(o)["networkLoss"].(map[string]any)["ports"] = []any{8080, 8080}
				delete(firstFault(o)["networkLoss"].(map[string]any), "towardAPIServer")
			},
			field: "spec.faults[0].networkLoss.ports[1]", words: "Duplicate value: 8080",
		},
		"17 faults where 16 is the most": {
			edit: func(o map[string]any) {
				var faults []any
				for i := range 17 {
					f := runtime.DeepCopyJSON(firstFault(o))
					f["name"] = "f" + strings.Repeat("x", i)
					faults = append(faults, f)
				}
				spec(o)["faults"] = faults
			},
			field: "spec.faults", words: "must have at most 16 items",
		},
		"two objectives with one name, a list keyed by name": {
			edit: func(o map[string]any) {
				objectives(o)[1].(map[string]any)["name"] = objectives(o)[0].(map[string]any)["name"]
			},
			field: "spec.objectives[1]", words: "Duplicate value",
		},
		"an objective longer than the schema's maximum": {
			edit: func(o map[string]any) {
				objectives(o)[0].(map[string]any)["expr"] = "recovery.seconds < 120" + strings.Repeat(" ", 3000)
			},
			field: "spec.objectives[0].expr", words: "Too long",
		},
		"an upper-case name, as ObjectMeta's rules refuse it": {
			edit:  func(o map[string]any) { meta(o)["name"] = "Node-Partition" },
			field: "metadata.name", words: "lowercase RFC 1123 subdomain",
		},
		"a name of 300 characters": {
			edit:  func(o map[string]any) { meta(o)["name"] = strings.Repeat("a", 300) },
			field: "metadata.name", words: "must be no more than 253 characters",
		},
		"no name and no generateName": {
			edit:  func(o map[string]any) { delete(meta(o), "name") },
			field: "metadata.name", words: "name or generateName is required",
		},
		"a generateName instead of a name is accepted": {
			edit: func(o map[string]any) { delete(meta(o), "name"); meta(o)["generateName"] = "partition-" },
		},
		"a rule of the CRD's own (CEL) is run": {
			edit:  func(o map[string]any) { firstFault(o)["duration"] = "48h" },
			field: "spec.faults[0]", words: "duration: must be more than 0s and at most 24h",
		},
		"a rule across fields (CEL) is run": {
			edit:  func(o map[string]any) { firstFault(o)["type"] = "Rollout" },
			field: "spec.faults[0]", words: "networkLoss: only for type NetworkLoss",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := example(t)
			tc.edit(o)
			errs, err := v.Validate(o)
			if err != nil {
				t.Fatal(err)
			}
			if tc.field == "" {
				if len(errs) > 0 {
					t.Fatalf("refused: %v", errs)
				}
				return
			}
			for _, e := range errs {
				if strings.HasPrefix(e.Field, tc.field) && strings.Contains(e.Error(), tc.words) {
					return
				}
			}
			t.Errorf("no error on %s with %q; got %v", tc.field, tc.words, errs)
		})
	}
}

// Every faultline document shipped passes the server's own rules.
func TestEveryShippedExperimentAndSchedulePassesTheSchema(t *testing.T) {
	v := validator(t)
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
		dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(string(b)), 4096)
		for {
			var obj map[string]any
			if dec.Decode(&obj) != nil {
				break
			}
			if api, _ := obj["apiVersion"].(string); !strings.HasPrefix(api, "faultline.dev/") {
				continue
			}
			n++
			if errs, err := v.Validate(obj); err != nil || len(errs) > 0 {
				t.Errorf("%s: %v %v", filepath.Base(f), err, errs)
			}
		}
	}
	if n < 5 {
		t.Fatalf("checked %d faultline documents, want at least 5", n)
	}
}
