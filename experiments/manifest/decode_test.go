package manifest

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type decodeSpec struct {
	metav1.TypeMeta `json:",inline"`
	Spec            struct {
		Faults []struct {
			Name     string             `json:"name"`
			Duration metav1.Duration    `json:"duration"`
			Size     *resource.Quantity `json:"size,omitempty"`
			Count    int32              `json:"count,omitempty"`
		} `json:"faults"`
		Labels  map[string]metav1.Duration `json:"labels,omitempty"`
		Enabled bool                       `json:"enabled,omitempty"`
	} `json:"spec"`
}

func TestDecodeStrictNamesTheFieldAValueDoesNotDecodeIn(t *testing.T) {
	tests := map[string]struct {
		in   string
		want string // empty: decodes
	}{
		"a document that decodes": {
			in: "spec: {faults: [{name: a, duration: 5s, size: 2Gi, count: 3}]}",
		},
		"a duration with an unknown unit names its path with the index": {
			in:   "spec: {faults: [{name: a, duration: 5s}, {name: b, duration: 5x}]}",
			want: `spec.faults[1].duration: time: unknown unit "x" in duration "5x"`,
		},
		"a quantity that is not one": {
			in:   "spec: {faults: [{name: a, duration: 5s, size: 2Gx}]}",
			want: "spec.faults[0].size: quantities must match the regular expression",
		},
		"a string where a whole number goes": {
			in:   "spec: {faults: [{name: a, duration: 5s, count: three}]}",
			want: "spec.faults[0].count: a string cannot be a whole number",
		},
		"a fraction where a whole number goes": {
			in:   "spec: {faults: [{name: a, duration: 5s, count: 1.5}]}",
			want: "spec.faults[0].count: a number 1.5 cannot be a whole number",
		},
		"a map's value names its key": {
			in:   "spec: {labels: {slow: 1m, odd: soon}}",
			want: "spec.labels[odd]: time: invalid duration",
		},
		"a number where a list goes": {
			in:   "spec: {faults: 3}",
			want: "spec.faults: a number cannot be a list",
		},
		"a string where a boolean goes": {
			in:   "spec: {enabled: 'yes'}",
			want: "spec.enabled: a string cannot be a boolean (true or false)",
		},
		"an unknown field is still named by the strict decoder": {
			in:   "spec: {faults: [], colour: red}",
			want: `unknown field "spec.colour"`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out decodeSpec
			err := DecodeStrict([]byte(tc.in), &out)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("DecodeStrict: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("DecodeStrict: %v, want an error with %q", err, tc.want)
			}
		})
	}
}
