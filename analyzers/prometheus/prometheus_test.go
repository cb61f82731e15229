package prometheus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	clocktesting "k8s.io/utils/clock/testing"

	"faultline.dev/faultline/analyzers"
	"faultline.dev/faultline/analyzers/slo"
)

var _ analyzers.Provider = (*Analyzer)(nil)

func TestValidateNamesEveryFieldAtFault(t *testing.T) {
	tests := map[string]struct {
		cfg  Config
		want []string
	}{
		"a server with queries is valid": {
			cfg: Config{Address: "http://prometheus:9090", Queries: []Query{{Name: "up", Query: "up", SuccessCondition: "result == 1.0"}}},
		},
		"a scraper of etcd and the API server is valid": {
			cfg: Config{Scrape: &Scrape{Etcd: []Target{{URL: "http://127.0.0.1:2381/metrics"}}, APIServer: &Target{URL: "https://127.0.0.1:6443/metrics"}}},
		},
		"neither a server nor a scraper": {
			want: []string{"set exactly one of address (a Prometheus server) or scrape (read /metrics directly)"},
		},
		"both a server and a scraper": {
			cfg:  Config{Address: "http://prometheus:9090", Scrape: &Scrape{APIServer: &Target{URL: "https://127.0.0.1:6443/metrics"}}},
			want: []string{"set exactly one of address"},
		},
		"an address that is not a URL": {
			cfg:  Config{Address: "prometheus:9090"},
			want: []string{`address: must be an http or https URL, got "prometheus:9090"`},
		},
		"a scraper of nothing": {
			cfg:  Config{Scrape: &Scrape{}},
			want: []string{"scrape: name etcd's metrics URLs, the API server's, or both"},
		},
		"a scraper's URLs that are not URLs": {
			cfg: Config{Scrape: &Scrape{Etcd: []Target{{URL: "http://127.0.0.1:2381/metrics"}, {URL: "127.0.0.1:2381"}}, APIServer: &Target{}}},
			want: []string{
				`scrape.etcd[1]: must be an http or https URL, got "127.0.0.1:2381"`,
				`scrape.apiServer: must be an http or https URL, got ""`,
			},
		},
		"queries without a server": {
			cfg:  Config{Scrape: &Scrape{APIServer: &Target{URL: "https://127.0.0.1:6443/metrics"}}, Queries: []Query{{Name: "up", Query: "up"}}},
			want: []string{"queries: need address (a Prometheus server)"},
		},
		"two queries of one name, one with a broken condition": {
			cfg: Config{Address: "http://prometheus:9090", Queries: []Query{
				{Name: "up", Query: "up"},
				{Name: "up", Query: "up", FailureCondition: "result >"},
			}},
			want: []string{`queries[1].name: "up" is used twice`, `queries[1].failureCondition: "result >": ERROR`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want %q", err, w)
				}
			}
		})
	}
}

func TestServerAsksForEachBuiltinOverTheWindowAtItsEnd(t *testing.T) {
	want := map[string]string{
		"walFsyncP99":       `histogram_quantile(0.99, sum by (le) (increase(etcd_disk_wal_fsync_duration_seconds_bucket[31s])))`,
		"walFsyncs":         `sum(increase(etcd_disk_wal_fsync_duration_seconds_count[31s]))`,
		"backendCommitP99":  `histogram_quantile(0.99, sum by (le) (increase(etcd_disk_backend_commit_duration_seconds_bucket[31s])))`,
		"backendCommits":    `sum(increase(etcd_disk_backend_commit_duration_seconds_count[31s]))`,
		"leaderChanges":     `max(increase(etcd_server_leader_changes_seen_total[31s]))`,
		"apiServerWriteP99": `histogram_quantile(0.99, sum by (le) (increase(apiserver_request_duration_seconds_bucket{verb=~"POST|PUT|PATCH|DELETE|APPLY"}[31s])))`,
		"apiServerWrites":   `sum(increase(apiserver_request_duration_seconds_count{verb=~"POST|PUT|PATCH|DELETE|APPLY"}[31s]))`,
	}
	for _, b := range builtins {
		if got := b.promQL("31s"); got != want[b.name] {
			t.Errorf("%s: promQL = %s, want %s", b.name, got, want[b.name])
		}
	}
}

func TestMeasureHasTheWindowsThatEnded(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	clk := clocktesting.NewFakeClock(t0)
	faultEnd := t0.Add(90*time.Second + 300*time.Millisecond)
	one := func(v float64) model.Vector { return model.Vector{{Value: model.SampleValue(v)}} }
	api := &fakeAPI{answer: func(q string, at time.Time) (model.Value, error) {
		p99 := strings.HasPrefix(q, "histogram_quantile")
		switch {
		case strings.Contains(q, "backend_commit") && p99:
			// No commit in the window.
			return one(math.NaN()), nil
		case strings.Contains(q, "apiserver") && at.Equal(faultEnd):
			return nil, errors.New("query timed out")
		case strings.Contains(q, "leader"):
			// No such series.
			return model.Vector{}, nil
		case p99 && at.Equal(faultEnd):
			return one(0.5), nil
		case p99:
			return one(0.01), nil
		}
		return one(200), nil
	}}
	a, err := withFakeServer(Config{Address: "http://prometheus:9090"}, clk, api)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ran := make(chan error)
	go func() { ran <- a.Run(ctx) }()
	judge, err := slo.New([]slo.Objective{{Name: "fsync", Expr: "prometheus.fault.walFsyncP99 < 0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	verdict := func() slo.Verdict {
		return slo.Overall(judge.Evaluate(slo.Measurements{"prometheus": a.Measure(clk.Now())}, false))
	}
	ended := func(window string) func() bool {
		return func() bool { _, ok := a.Measure(clk.Now())[window]; return ok }
	}

	a.Mark(BaselineStart)
	clk.Step(30*time.Second + 200*time.Millisecond)
	a.Mark(FaultStart)
	waitFor(t, "the baseline", ended("baseline"))
	if v := verdict(); v != slo.Inconclusive {
		t.Errorf("before the faults end, the objective is %s, want Inconclusive", v)
	}
	clk.Step(60*time.Second + 100*time.Millisecond)
	a.Mark(FaultEnd)
	waitFor(t, "the faults' window", ended("fault"))
	if v := verdict(); v != slo.Failed {
		t.Errorf("once the faults end, the objective is %s, want Failed", v)
	}
	clk.Step(30 * time.Second)
	a.Mark(RecoveryEnd)
	if err := <-ran; err != nil {
		t.Fatal(err)
	}

	// Over each window exactly: a range reaching back before the window's
	// start would count the fault's last observations in the recovery.
	for _, w := range []struct {
		name string
		rng  string
		end  time.Duration
	}{
		{"baseline", "30200ms", 30200 * time.Millisecond},
		{"fault", "60100ms", 90300 * time.Millisecond},
		{"recovery", "30000ms", 120300 * time.Millisecond},
	} {
		if got := api.queries(builtins[0].promQL(w.rng)); len(got) != 1 || !got[0].Equal(t0.Add(w.end)) {
			t.Errorf("%s's walFsyncP99 asked over [%s] at %v, want once at its end, %v", w.name, w.rng, got, t0.Add(w.end))
		}
	}
	got := a.Measure(clk.Now())
	sameValues(t, got["baseline"].(map[string]any), map[string]any{
		"walFsyncP99": 0.01, "walFsyncs": 200.0, "backendCommits": 200.0, "apiServerWriteP99": 0.01, "apiServerWrites": 200.0,
	})
	fault := got["fault"].(map[string]any)
	if e, _ := fault["error"].(string); !strings.Contains(e, "apiServerWriteP99: query timed out") || !strings.Contains(e, "apiServerWrites: query timed out") {
		t.Errorf("fault error = %q, want the API server's queries' errors", e)
	}
	delete(fault, "error")
	sameValues(t, fault, map[string]any{"walFsyncP99": 0.5, "walFsyncs": 200.0, "backendCommits": 200.0})
	if errs := got["errors"].([]string); len(errs) != 1 || !strings.HasPrefix(errs[0], "fault: apiServerWriteP99: query timed out") {
		t.Errorf("errors = %q, want the fault window's", errs)
	}
	if d, _ := got["walFsyncP99OverBaseline"].(float64); math.Abs(d-0.49) > 1e-12 {
		t.Errorf("walFsyncP99OverBaseline = %v, want 0.49", d)
	}
	if _, ok := got["apiServerWriteP99OverBaseline"]; ok {
		t.Error("apiServerWriteP99OverBaseline is there without the fault's apiServerWriteP99")
	}
	if _, ok := got["recovery"]; !ok {
		t.Error("no recovery window after its end")
	}
	if _, ok := got["queries"]; ok {
		t.Error("queries are there without any")
	}
}

func TestAWindowWhoseStartWasNotMarkedIsNotMeasuredNorAreQueries(t *testing.T) {
	api := &fakeAPI{answer: func(string, time.Time) (model.Value, error) { return model.Vector{}, nil }}
	a, err := withFakeServer(Config{Address: "http://prometheus:9090", Queries: []Query{{Name: "up", Query: "up"}}}, clocktesting.NewFakeClock(time.Unix(1e9, 0)), api)
	if err != nil {
		t.Fatal(err)
	}
	a.Mark(RecoveryEnd)
	a.Mark(RecoveryEnd) // again: ignored
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Run(ctx); err == nil {
		t.Error("a second Run did not fail")
	}
	got := a.Measure(time.Now())
	if _, ok := got["recovery"]; ok {
		t.Errorf("recovery = %v, want none: its start was not marked", got["recovery"])
	}
	if errs := got["errors"].([]string); len(errs) != 1 || errs[0] != "recovery: not measured: fault end was not marked" {
		t.Errorf("errors = %q, want the recovery window's", errs)
	}
	if up := got["queries"].(map[string]any)["up"].(map[string]any); up["phase"] != "Error" || up["error"] != "no measurement was judged" {
		t.Errorf("up = %v, want Error: it was never measured", up)
	}
}

func TestNewWithAnAddressAsksThePrometheusHTTPAPI(t *testing.T) {
	var mu sync.Mutex
	var times []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.URL.Path != "/api/v1/query" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		times = append(times, r.Form.Get("time"))
		mu.Unlock()
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[%s,"0.25"]}]}}`, r.Form.Get("time"))
	}))
	defer srv.Close()
	clk := clocktesting.NewFakeClock(time.Unix(1e9, 0))
	a, err := New(Config{Address: srv.URL}, clk)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a.Mark(BaselineStart)
	clk.Step(30 * time.Second)
	a.Mark(FaultStart)
	a.Mark(FaultEnd)
	a.Mark(RecoveryEnd)
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
	baseline := a.Measure(clk.Now())["baseline"].(map[string]any)
	if len(baseline) != len(builtins) || baseline["walFsyncP99"] != 0.25 {
		t.Errorf("baseline = %v, want every built-in at 0.25", baseline)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 3*len(builtins) || !slices.Contains(times, "1000000030") {
		t.Errorf("asked at %q, want each built-in of each window, the baseline's at its end", times)
	}
}
