package slo_test

import (
	"errors"
	"strings"
	"testing"

	"faultline.dev/faultline/analyzers/measures"
	"faultline.dev/faultline/analyzers/slo"
)

func TestObjectivesAreTypeCheckedAgainstTheDeclaredMeasurements(t *testing.T) {
	tests := map[string]struct {
		expr string
		// want are the words the refusal must hold; none: accepted.
		want []string
	}{
		"a declared number compared with a number is accepted":      {expr: "traffic.errorRatio <= 0.001"},
		"a status code read by index is accepted":                   {expr: `traffic.status["502"] == 0`},
		"a window's figure is accepted":                             {expr: "traffic.fault.latency.p99 < 0.5"},
		"a user's PromQL query is read by its own name":             {expr: "prometheus.queries.walFsyncP99.phase == 'Successful'"},
		"a list is read with CEL's macros":                          {expr: "evictions.order.all(e, e.qosClass == 'BestEffort')"},
		"a map's key may be computed":                               {expr: "nodes.memoryPressure.all(k, k != '')"},
		"a has() test is accepted on a declared measurement":        {expr: "!has(recovery.seconds) || recovery.seconds < 120"},
		"a misspelt measurement is refused with the nearest one":    {expr: "traffic.errorRatoi <= 0.001", want: []string{"traffic.errorRatoi is not a measurement", "did you mean traffic.errorRatio?"}},
		"a misspelt analyzer is refused as well":                    {expr: "evictons.count == 0", want: []string{"undeclared reference to 'evictons'"}},
		"a number compared with a string is refused":                {expr: `traffic.errorRatio == "high"`, want: []string{"traffic.errorRatio is a number; it cannot be compared with the string high"}},
		"a number used as true or false is refused":                 {expr: "evictions.count && nodes.notReadyNodes == 0", want: []string{"evictions.count is a number, not true or false"}},
		"a bool used as true or false is accepted":                  {expr: "evictions.orderKept && evictions.bestEffortFirst"},
		"every problem of an objective is named, not the first one": {expr: "traffic.errorRatoi < 1 && oom.kils == 0", want: []string{"traffic.errorRatoi", "oom.kils", "oom.kills"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			j, err := slo.New([]slo.Objective{{Name: "o", Expr: tc.expr}})
			if err != nil {
				t.Fatal(err)
			}
			// As faultline validate and the controller check them.
			err = errors.Join(j.Validate(), j.Check(measures.All))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("%q refused: %v", tc.expr, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("%q accepted, want a refusal naming %q", tc.expr, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal %q does not say %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "objectives[0] (o): ") {
				t.Errorf("refusal %q does not name the objective", err)
			}
		})
	}
}
