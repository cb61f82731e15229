package prometheus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestValueIsANumberOrAListInTheOrderOfTheLabels(t *testing.T) {
	sample := func(instance string, v float64) *model.Sample {
		return &model.Sample{Metric: model.Metric{"instance": model.LabelValue(instance)}, Value: model.SampleValue(v)}
	}
	tests := map[string]struct {
		v       model.Value
		want    any
		wantErr string
	}{
		"a scalar is a number": {
			v:    &model.Scalar{Value: 0.5},
			want: 0.5,
		},
		"a vector is a list sorted by label set": {
			v:    model.Vector{sample("c", 3), sample("a", 1), sample("b", 2)},
			want: []float64{1, 2, 3},
		},
		"an empty vector is an empty list": {
			v:    model.Vector{},
			want: []float64{},
		},
		"a range vector is refused": {
			v:       model.Matrix{},
			wantErr: "the query returns a matrix; conditions take a scalar or an instant vector",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := value(tc.v)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l, ok := tc.want.([]float64); ok {
				if g, _ := got.([]float64); !slices.Equal(g, l) || g == nil {
					t.Errorf("value = %#v, want %#v", got, tc.want)
				}
			} else if got != tc.want {
				t.Errorf("value = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestJudgeFollowsArgoRollouts(t *testing.T) {
	tests := map[string]struct {
		success, failure string
		result, baseline any
		wantFailed       bool
		wantErr          string
	}{
		"no condition passes": {
			result: 1.0,
		},
		"a success condition that holds passes": {
			success: "result == 1.0", result: 1.0,
		},
		"a success condition that does not hold fails": {
			success: "result == 1.0", result: 0.0, wantFailed: true,
		},
		"a failure condition that holds fails, whatever the success condition": {
			success: "result >= 0.0", failure: "result > 0.5", result: 1.0, wantFailed: true,
		},
		"a failure condition alone that does not hold passes": {
			failure: "result > 0.5", result: 0.1,
		},
		"a vector's result is a list": {
			success: "size(result) == 2 && result.all(x, x < 0.1)", result: []float64{0.01, 0.02},
		},
		"a condition may compare with the baseline": {
			failure: "result > 2.0 * baseline", result: 0.5, baseline: 0.2, wantFailed: true,
		},
		"an int literal compares with a number": {
			success: "result < 1", result: 0.5,
		},
		"an index out of range is an error": {
			success: "result[3] < 0.1", result: []float64{0.01}, wantErr: "index out of bounds",
		},
		"a condition that is not true or false is an error": {
			success: "result", result: 1.0, wantErr: "evaluated to 1, not true or false",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			q, err := newQuery(0, Query{Name: "q", Query: "up", SuccessCondition: tc.success, FailureCondition: tc.failure})
			if err != nil {
				t.Fatal(err)
			}
			q.baseline = tc.baseline
			failed, err := q.judge(tc.result)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || failed != tc.wantFailed {
				t.Errorf("judge = %v, %v; want failed %v", failed, err, tc.wantFailed)
			}
		})
	}
}

func TestNewQueryNamesTheFieldAtFault(t *testing.T) {
	tests := map[string]struct {
		q    Query
		want []string
	}{
		"a condition that does not compile": {
			q:    Query{Name: "walp99", Query: "up", SuccessCondition: "result <"},
			want: []string{`queries[2].successCondition: "result <": ERROR`},
		},
		"a condition that is not true or false": {
			q:    Query{Name: "walp99", Query: "up", FailureCondition: "'x'"},
			want: []string{`queries[2].failureCondition: "'x'": the expression is a string; it must be true or false`},
		},
		"a condition on an unknown variable": {
			q:    Query{Name: "walp99", Query: "up", SuccessCondition: "value < 1"},
			want: []string{`queries[2].successCondition: "value < 1": ERROR: <input>:1:1: undeclared reference to 'value'`},
		},
		"a name objectives cannot read, no query, and negative numbers": {
			q: Query{Name: "wal-p99", FailureLimit: -1, Interval: -time.Second},
			want: []string{
				`queries[2].name: must be a letter then up to 62 letters, digits or _, got "wal-p99"`,
				"queries[2].query: must not be empty",
				"queries[2].failureLimit: must not be negative, got -1",
				"queries[2].interval: must not be negative, got -1s",
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := newQuery(2, tc.q)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want %q", err, w)
				}
			}
		})
	}
}

// outcome is a measurement's query answer, or error.
type outcome struct {
	result     any
	err        error
	asBaseline bool
}

func TestRecordCountsMeasurementsUntilAPhaseEndsThem(t *testing.T) {
	boom := errors.New("connection refused")
	ok, bad := outcome{result: 1.0}, outcome{result: 0.0}
	tests := map[string]struct {
		q        Query
		outcomes []outcome
		finish   bool
		want     map[string]any
	}{
		"failures up to the limit are tolerated": {
			q:        Query{FailureLimit: 2},
			outcomes: []outcome{ok, bad, ok, bad, ok},
			finish:   true,
			want:     map[string]any{"measurements": int64(5), "failed": int64(2), "errors": int64(0), "phase": "Successful", "result": 1.0},
		},
		"one failure more than the limit fails the query, which measures no more": {
			q:        Query{FailureLimit: 1},
			outcomes: []outcome{bad, ok, bad, ok, ok},
			finish:   true,
			want:     map[string]any{"measurements": int64(3), "failed": int64(2), "errors": int64(0), "phase": "Failed", "result": 0.0},
		},
		"more than 4 errors in a row end the query in Error": {
			outcomes: []outcome{ok, {err: boom}, {err: boom}, {err: boom}, {err: boom}, {err: boom}, ok},
			want:     map[string]any{"measurements": int64(6), "failed": int64(0), "errors": int64(5), "phase": "Error", "result": 1.0, "error": "connection refused"},
		},
		"an answer between errors starts their count again": {
			outcomes: []outcome{{err: boom}, {err: boom}, {err: boom}, {err: boom}, ok, {err: boom}, {err: boom}},
			want:     map[string]any{"measurements": int64(7), "failed": int64(0), "errors": int64(6), "phase": "Running", "result": 1.0, "error": "connection refused"},
		},
		"a query that never answered ends in Error": {
			outcomes: []outcome{{err: boom}},
			finish:   true,
			want:     map[string]any{"measurements": int64(1), "failed": int64(0), "errors": int64(1), "phase": "Error", "error": "connection refused"},
		},
		"a condition on the baseline is not judged before there is one": {
			q:        Query{FailureCondition: "result > 2.0 * baseline"},
			outcomes: []outcome{{result: 9.0}, {result: 1.0, asBaseline: true}, {result: 3.0}},
			want:     map[string]any{"measurements": int64(2), "failed": int64(1), "errors": int64(0), "phase": "Failed", "result": 3.0, "baseline": 1.0},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.q.Name, tc.q.Query = "q", "up"
			if tc.q.SuccessCondition == "" && tc.q.FailureCondition == "" {
				tc.q.SuccessCondition = "result == 1.0"
			}
			q, err := newQuery(0, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range tc.outcomes {
				q.record(o.result, o.err, o.asBaseline)
			}
			if tc.finish {
				q.finish()
			}
			got := q.values()
			if len(got) != len(tc.want) {
				t.Fatalf("values = %v, want %v", got, tc.want)
			}
			for k, w := range tc.want {
				if got[k] != w {
					t.Errorf("%s = %v, want %v (all: %v)", k, got[k], w, got)
				}
			}
		})
	}
}

// fakeAPI answers queries as answer says and remembers them.
type fakeAPI struct {
	answer func(q string, at time.Time) (model.Value, error)

	mu     sync.Mutex
	asked  []asked
	ranges []promv1.Range
}

type asked struct {
	q  string
	at time.Time
}

func (f *fakeAPI) Query(_ context.Context, q string, at time.Time, _ ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error) {
	f.mu.Lock()
	f.asked = append(f.asked, asked{q, at})
	f.mu.Unlock()
	v, err := f.answer(q, at)
	return v, nil, nil, err
}

// QueryRange answers a range query with one series: the instant answers
// at each step (a vector's samples in turn).
func (f *fakeAPI) QueryRange(_ context.Context, q string, r promv1.Range, _ ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error) {
	f.mu.Lock()
	f.ranges = append(f.ranges, r)
	f.mu.Unlock()
	s := &model.SampleStream{}
	for at := r.Start; !at.After(r.End); at = at.Add(r.Step) {
		v, err := f.answer(q, at)
		if err != nil {
			return nil, nil, nil, err
		}
		switch v := v.(type) {
		case *model.Scalar:
			s.Values = append(s.Values, model.SamplePair{Timestamp: model.TimeFromUnixNano(at.UnixNano()), Value: v.Value})
		case model.Vector:
			for _, x := range v {
				s.Values = append(s.Values, model.SamplePair{Timestamp: model.TimeFromUnixNano(at.UnixNano()), Value: x.Value})
			}
		}
	}
	return model.Matrix{s}, nil, nil, nil
}

func (f *fakeAPI) queries(q string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []time.Time
	for _, a := range f.asked {
		if a.q == q {
			out = append(out, a.at)
		}
	}
	return out
}

// withFakeServer is New with a server source that asks api.
func withFakeServer(cfg Config, clk clock.WithTicker, api querier) (*Analyzer, error) {
	qs, err := cfg.queries()
	if err != nil {
		return nil, err
	}
	return newAnalyzer(qs, clk, &server{api: api}, api), nil
}

// waitFor polls cond, for what a background goroutine does.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestQueriesAreMeasuredEveryIntervalFromTheFirstMarkToTheRecoveryEnd(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	clk := clocktesting.NewFakeClock(t0)
	// The leader is lost 20 s in, once: one failure is tolerated.
	api := &fakeAPI{answer: func(q string, at time.Time) (model.Value, error) {
		if q != "sum(etcd_server_has_leader)" {
			return model.Vector{}, nil
		}
		v := 1.0
		if at.Sub(t0) == 20*time.Second {
			v = 0
		}
		return model.Vector{{Value: model.SampleValue(v)}}, nil
	}}
	a, err := withFakeServer(Config{Address: "http://prometheus:9090", Queries: []Query{{
		Name: "hasLeader", Query: "sum(etcd_server_has_leader)", SuccessCondition: "result[0] == 1.0", FailureLimit: 1, Interval: 10 * time.Second,
	}}}, clk, api)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ran := make(chan error)
	go func() { ran <- a.Run(ctx) }()

	hasLeader := func() map[string]any {
		return a.Measure(clk.Now())["queries"].(map[string]any)["hasLeader"].(map[string]any)
	}
	measured := func(n int64) func() bool { return func() bool { return hasLeader()["measurements"] == n } }
	if got := hasLeader(); got["phase"] != "Running" || got["measurements"] != int64(0) {
		t.Errorf("before the first mark, hasLeader = %v, want Running and not measured", got)
	}
	a.Mark(BaselineStart)
	waitFor(t, "the first measurement", measured(1))
	clk.Step(10 * time.Second)
	waitFor(t, "the second measurement", measured(2))
	clk.Step(5 * time.Second)
	a.Mark(FaultStart) // at 15 s
	waitFor(t, "the baseline's measurement", measured(3))
	if got := hasLeader()["baseline"]; !slices.Equal(got.([]float64), []float64{1}) {
		t.Errorf("baseline = %v, want [1]", got)
	}
	clk.Step(5 * time.Second)
	waitFor(t, "the measurement at 20 s", measured(4))
	clk.Step(5 * time.Second)
	a.Mark(FaultEnd) // at 25 s
	clk.Step(5 * time.Second)
	waitFor(t, "the measurement at 30 s", measured(5))
	a.Mark(RecoveryEnd) // at 30 s
	if err := <-ran; err != nil {
		t.Fatal(err)
	}

	want := []time.Time{t0, t0.Add(10 * time.Second), t0.Add(15 * time.Second), t0.Add(20 * time.Second), t0.Add(30 * time.Second), t0.Add(30 * time.Second)}
	if got := api.queries("sum(etcd_server_has_leader)"); !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Errorf("measured at %v, want %v: at once, every interval, at the baseline's end and at the recovery's end", got, want)
	}
	got := hasLeader()
	if got["phase"] != "Successful" || got["measurements"] != int64(6) || got["failed"] != int64(1) {
		t.Errorf("hasLeader = %v, want Successful after 6 measurements, 1 failed", got)
	}
	// Each window is also asked as a range query, one point per interval.
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	wantRanges := []promv1.Range{{Start: at(0), End: at(15), Step: 10 * time.Second}, {Start: at(15), End: at(25), Step: 10 * time.Second}, {Start: at(25), End: at(30), Step: 10 * time.Second}}
	if !slices.EqualFunc(api.ranges, wantRanges, func(a, b promv1.Range) bool { return a.Start.Equal(b.Start) && a.End.Equal(b.End) && a.Step == b.Step }) {
		t.Errorf("range queries %v, want %v: the baseline, the fault and the recovery", api.ranges, wantRanges)
	}
	ws, _ := got["windows"].(map[string]any)
	for name, points := range map[string]int64{"baseline": 2, "fault": 2, "recovery": 1} {
		w, _ := ws[name].(map[string]any)
		if w["points"] != points || w["min"] != 1.0 || w["max"] != 1.0 {
			t.Errorf("windows.%s = %v, want %d points of 1", name, w, points)
		}
	}
}

func TestSummarizeKeepsTheLowestHighestAndMeanOfEveryPoint(t *testing.T) {
	pairs := func(vs ...float64) []model.SamplePair {
		out := make([]model.SamplePair, len(vs))
		for i, v := range vs {
			out[i] = model.SamplePair{Timestamp: model.Time(i * 1000), Value: model.SampleValue(v)}
		}
		return out
	}
	tests := map[string]struct {
		v       model.Value
		want    map[string]any
		wantErr string
	}{
		"one series": {
			v:    model.Matrix{{Values: pairs(0.25, 0.75, 0.5)}},
			want: map[string]any{"points": int64(3), "min": 0.25, "max": 0.75, "mean": 0.5},
		},
		"every series counts, and NaN points (an empty histogram's quantile) are left out": {
			v:    model.Matrix{{Values: pairs(1, math.NaN())}, {Values: pairs(3)}},
			want: map[string]any{"points": int64(2), "min": 1.0, "max": 3.0, "mean": 2.0},
		},
		"no point at all has only the count": {
			v:    model.Matrix{},
			want: map[string]any{"points": int64(0)},
		},
		"an answer that is not a matrix is refused": {
			v:       &model.Scalar{Value: 1},
			wantErr: "not a matrix",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := map[string]any{}
			err := summarize(tc.v, got)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, w := range tc.want {
				if g := got[k]; fmt.Sprint(g) != fmt.Sprint(w) {
					t.Errorf("%s: %v, want %v", k, g, w)
				}
			}
		})
	}
}
