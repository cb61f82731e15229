package slo

import (
	"strings"
	"testing"
)

func TestEvaluate(t *testing.T) {
	m := Measurements{
		"nodes": {"maxNotReadySeconds": 25.5, "notReadySpans": int64(1)},
		"evictions": {"count": int64(4), "reasons": map[string]any{"TaintManagerEviction": int64(4)},
			"orderKept": true, "order": []any{map[string]any{"qosClass": "BestEffort"}}},
	}
	tests := map[string]struct {
		expr    string
		want    Verdict
		message string
	}{
		"a bound that holds passes":                                    {expr: "nodes.maxNotReadySeconds <= 60", want: Passed, message: "nodes.maxNotReadySeconds = 25.5"},
		"a bound that is crossed fails, naming it":                     {expr: "evictions.count == 0", want: Failed, message: "breached: evictions.count == 0 with evictions.count = 4"},
		"a measurement not taken is inconclusive":                      {expr: "recovery.seconds < 120", want: Inconclusive},
		"nested maps can be read":                                      {expr: "evictions.reasons['TaintManagerEviction'] >= 1", want: Passed},
		"a syntax error is an error":                                   {expr: "nodes.maxNotReadySeconds <=", want: Error},
		"an expression that is not a boolean errs":                     {expr: "nodes.maxNotReadySeconds + 1", want: Error, message: "must be true or false"},
		"an unknown analyzer is an error":                              {expr: "weather.sunny", want: Error, message: "undeclared reference"},
		"integers and doubles compare with a cast":                     {expr: "double(evictions.count) < 4.5", want: Passed},
		"a measurement is named whole, not by a longer name it begins": {expr: "evictions.orderKept", want: Passed, message: "with evictions.orderKept = true"},
		"lists can be read":                                            {expr: "evictions.order.all(e, e.qosClass == 'BestEffort')", want: Passed, message: "evictions.order = [map[qosClass:BestEffort]]"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			j, err := New([]Objective{{Name: "o", Expr: tc.expr}})
			if err != nil {
				t.Fatal(err)
			}
			rs := j.Evaluate(m, false)
			if len(rs) != 1 || rs[0].Verdict != tc.want {
				t.Fatalf("verdict %+v, want %s", rs, tc.want)
			}
			if !strings.Contains(rs[0].Message, tc.message) {
				t.Errorf("message %q lacks %q", rs[0].Message, tc.message)
			}
			if strings.Contains(tc.expr, "orderKept") && strings.Contains(rs[0].Message, "evictions.order =") {
				t.Errorf("message %q names evictions.order", rs[0].Message)
			}
		})
	}
}

func TestOverallIsTheWorstVerdict(t *testing.T) {
	tests := map[string]struct {
		in   []Verdict
		want Verdict
	}{
		"no objectives pass":                     {want: Passed},
		"all passed pass":                        {in: []Verdict{Passed, Passed}, want: Passed},
		"one inconclusive makes it inconclusive": {in: []Verdict{Passed, Inconclusive}, want: Inconclusive},
		"a failure beats inconclusive":           {in: []Verdict{Inconclusive, Failed, Passed}, want: Failed},
		"an error beats everything":              {in: []Verdict{Failed, Error}, want: Error},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var rs []Result
			for _, v := range tc.in {
				rs = append(rs, Result{Verdict: v})
			}
			if got := Overall(rs); got != tc.want {
				t.Errorf("Overall = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestOnlyAbortObjectivesAreCheckedLive(t *testing.T) {
	j, err := New([]Objective{{Name: "live", Expr: "nodes.maxNotReadySeconds < 10", Abort: true}, {Name: "end", Expr: "evictions.count == 0"}})
	if err != nil {
		t.Fatal(err)
	}
	rs := j.Evaluate(Measurements{"nodes": {"maxNotReadySeconds": 12.0}}, true)
	if len(rs) != 1 || rs[0].Name != "live" || rs[0].Verdict != Failed {
		t.Fatalf("live results %+v, want only the abort objective, Failed", rs)
	}
}

func TestValidateNamesTheObjective(t *testing.T) {
	j, _ := New([]Objective{{Name: "ok", Expr: "true"}, {Name: "broken", Expr: "nodes. <"}})
	err := j.Validate()
	if err == nil || !strings.Contains(err.Error(), "objectives[1] (broken)") {
		t.Errorf("Validate = %v, want it to name objectives[1] (broken)", err)
	}
}
