package prometheus

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	clocktesting "k8s.io/utils/clock/testing"
)

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseKeepsTheSeriesTheBuiltinsRead(t *testing.T) {
	etcd, err := parse(strings.NewReader(fixture(t, "etcd-2.metrics")), expfmt.NewFormat(expfmt.TypeTextPlain))
	if err != nil {
		t.Fatal(err)
	}
	if len(etcd) != 3 {
		t.Errorf("families = %d, want the 3 etcd ones the built-ins read, not the others", len(etcd))
	}
	wal := only(t, etcd[walFsync])
	if wal[inf] != 1200 || wal[0.128] != 1100 || wal[0.001] != 0 || len(wal) != 15 {
		t.Errorf("WAL fsync histogram = %v, want 14 buckets and +Inf = count = 1200", wal)
	}
	if lc := only(t, etcd[leaderChanges]); lc[inf] != 2 || len(lc) != 1 {
		t.Errorf("leader changes = %v, want 2 as the +Inf count", lc)
	}

	api, err := parse(strings.NewReader(fixture(t, "apiserver-2.metrics")), expfmt.NewFormat(expfmt.TypeTextPlain))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(api[apiRequests]); n != 2 {
		t.Errorf("API server request series = %d, want the POST and the DELETE, not the GET and the WATCH", n)
	}
	del := api[apiRequests][model.LabelsToSignature(map[string]string{
		"component": "apiserver", "dry_run": "", "group": "", "resource": "configmaps", "scope": "resource", "subresource": "", "verb": "DELETE", "version": "v1",
	})]
	if del[0.025] != 50 || del[inf] != 50 {
		t.Errorf("DELETE configmaps = %v, want 50 under 0.025", del)
	}
}

func only(t *testing.T, series map[uint64]histogram) histogram {
	t.Helper()
	if len(series) != 1 {
		t.Fatalf("series = %d, want 1", len(series))
	}
	for _, h := range series {
		return h
	}
	return nil
}

func TestParseRefusesWhatItCannotDifference(t *testing.T) {
	tests := map[string]struct {
		text, want string
	}{
		"a leader change gauge": {
			text: "# TYPE etcd_server_leader_changes_seen_total gauge\netcd_server_leader_changes_seen_total 1\n",
			want: "etcd_server_leader_changes_seen_total: is a GAUGE, not a counter or a histogram",
		},
		"a broken exposition": {
			text: "etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.1\" 3\n",
			want: "text format parsing error",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := parse(strings.NewReader(tc.text), expfmt.NewFormat(expfmt.TypeTextPlain))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// series are the built-ins' families, one series each, as a target
// exposes them.
func series(wal, commit, leader, writes histogram) metrics {
	m := metrics{}
	for family, h := range map[string]histogram{walFsync: wal, backendCommit: commit, leaderChanges: leader, apiRequests: writes} {
		if h != nil {
			m[family] = map[uint64]histogram{1: h}
		}
	}
	return m
}

func TestScraperWindowDifferencesAndSumsTargets(t *testing.T) {
	quiet := histogram{0.01: 5, 0.1: 5, inf: 5}
	tests := map[string]struct {
		// earlier and later hold each target's snapshot; the last is the
		// API server when apiServer.
		earlier, later []reading
		apiServer      bool
		want           map[string]any
		wantErr        string
	}{
		"two etcd members are summed bucket by bucket, and their leader changes are not": {
			earlier: []reading{
				{m: series(histogram{0.01: 10, 0.1: 10, inf: 10}, quiet, histogram{inf: 1}, nil)},
				{m: series(histogram{0.01: 0, 0.1: 0, inf: 0}, quiet, histogram{inf: 1}, nil)},
			},
			later: []reading{
				{m: series(histogram{0.01: 60, 0.1: 60, inf: 60}, quiet, histogram{inf: 2}, nil)},
				{m: series(histogram{0.01: 0, 0.1: 50, inf: 50}, quiet, histogram{inf: 2}, nil)},
			},
			want: map[string]any{
				// 100 fsyncs: 50 under 0.01, 50 in (0.01, 0.1].
				"walFsyncP99": 0.01 + 0.09*(99-50)/50.0, "walFsyncs": 100.0,
				"backendCommits": 0.0, "leaderChanges": 1.0,
			},
		},
		"a member that restarted counts from 0": {
			earlier: []reading{{m: series(histogram{0.01: 900, 0.1: 1000, inf: 1000}, quiet, histogram{inf: 3}, nil)}},
			later:   []reading{{m: series(histogram{0.01: 2, 0.1: 2, inf: 2}, quiet, histogram{inf: 1}, nil)}},
			want: map[string]any{
				"walFsyncP99": 0.0099, "walFsyncs": 2.0, "backendCommits": 0.0, "leaderChanges": 1.0,
			},
		},
		"the API server's writes are measured beside etcd": {
			earlier: []reading{
				{m: series(quiet, quiet, histogram{inf: 0}, nil)},
				{m: series(nil, nil, nil, histogram{0.1: 10, 1: 10, inf: 10})},
			},
			later: []reading{
				{m: series(quiet, quiet, histogram{inf: 0}, nil)},
				{m: series(nil, nil, nil, histogram{0.1: 10, 1: 20, inf: 20})},
			},
			apiServer: true,
			want: map[string]any{
				"walFsyncs": 0.0, "backendCommits": 0.0, "leaderChanges": 0.0,
				"apiServerWriteP99": 0.1 + 0.9*9.9/10, "apiServerWrites": 10.0,
			},
		},
		"an etcd member that did not answer leaves etcd out, not the API server": {
			earlier: []reading{
				{m: series(quiet, quiet, histogram{inf: 0}, nil)},
				{err: errors.New("connection refused")},
				{m: series(nil, nil, nil, histogram{1: 10, inf: 10})},
			},
			later: []reading{
				{m: series(quiet, quiet, histogram{inf: 0}, nil)},
				{m: series(quiet, quiet, histogram{inf: 0}, nil)},
				{m: series(nil, nil, nil, histogram{1: 30, inf: 30})},
			},
			apiServer: true,
			want:      map[string]any{"apiServerWriteP99": 0.99, "apiServerWrites": 20.0},
			wantErr:   "http://etcd-1/metrics: connection refused",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var sc Scrape
			n := len(tc.later)
			if tc.apiServer {
				n--
				sc.APIServer = &Target{URL: "http://apiserver/metrics"}
			}
			for i := range n {
				sc.Etcd = append(sc.Etcd, Target{URL: "http://etcd-" + string(rune('0'+i)) + "/metrics"})
			}
			s := newScraper(sc)
			s.snaps[FaultStart], s.snaps[FaultEnd] = tc.earlier, tc.later
			got, err := s.window(context.Background(), FaultStart, FaultEnd)
			if (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
			sameValues(t, got, tc.want)
		})
	}
}

func sameValues(t *testing.T, got, want map[string]any) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
		return
	}
	for k, w := range want {
		g, ok := got[k]
		gf, okf := g.(float64)
		wf, wok := w.(float64)
		if !ok || (okf && wok && math.Abs(gf-wf) > 1e-9) || (!(okf && wok) && g != w) {
			t.Errorf("%s = %v, want %v (all: %v)", k, g, w, got)
		}
	}
}

// exporter serves the fixture files its name says, as a component
// serves its /metrics: in the format the request accepts.
type exporter struct {
	file   atomic.Value // string: the fixture to serve; "" answers 500
	format atomic.Value // expfmt.Format: the last one served
}

func (e *exporter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := e.file.Load().(string)
	if name == "" {
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultAcceptedFormats()...)
	e.format.Store(format)
	w.Header().Set("Content-Type", string(format))
	enc := expfmt.NewEncoder(w, format)
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			return
		}
	}
}

func serve(t *testing.T, file string) (*exporter, string) {
	e := &exporter{}
	e.file.Store(file)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return e, srv.URL + "/metrics"
}

func TestScraperMeasuresEachWindowFromTheMetricsAtItsBoundaries(t *testing.T) {
	etcd, etcdURL := serve(t, "etcd-1.metrics")
	api, apiURL := serve(t, "apiserver-1.metrics")
	clk := clocktesting.NewFakeClock(time.Unix(1e9, 0))
	a, err := New(Config{Scrape: &Scrape{Etcd: []Target{{URL: etcdURL}}, APIServer: &Target{URL: apiURL}}}, clk)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ran := make(chan error)
	go func() { ran <- a.Run(ctx) }()

	markAndWait := func(b Boundary) {
		a.Mark(b)
		select {
		case <-a.done[b]:
		case <-ctx.Done():
			t.Fatalf("%s was not marked", b)
		}
	}
	markAndWait(BaselineStart)
	if got := a.Measure(clk.Now()); len(got) != 1 || len(got["errors"].([]string)) != 0 {
		t.Errorf("before any window ends, Measure = %v, want only no errors", got)
	}

	etcd.file.Store("etcd-2.metrics")
	api.file.Store("apiserver-2.metrics")
	markAndWait(FaultStart)
	// Both restart: their counts go back to those of their first fixtures.
	etcd.file.Store("etcd-1.metrics")
	api.file.Store("apiserver-1.metrics")
	markAndWait(FaultEnd)
	etcd.file.Store("")
	a.Mark(RecoveryEnd)
	if err := <-ran; err != nil {
		t.Fatal(err)
	}

	if f := api.format.Load().(expfmt.Format); f.FormatType() != expfmt.TypeProtoDelim {
		t.Errorf("the scraper was served %s, want protobuf, the cheapest to parse", f)
	}
	got := a.Measure(clk.Now())
	sameValues(t, got["baseline"].(map[string]any), map[string]any{
		// 200 fsyncs: 100 in (0.064, 0.128], 100 in (0.128, 0.256].
		"walFsyncP99": 0.128 + 0.128*(198-100)/100.0, "walFsyncs": 200.0,
		// No commit: no quantile, and 0 commits.
		"backendCommits": 0.0,
		"leaderChanges":  1.0,
		// 100 writes: 50 DELETE under 0.025, 40 POST in (0.2, 0.4], 10 POST
		// in (0.8, 1]; the slow GETs and WATCHes are not writes.
		"apiServerWriteP99": 0.8 + 0.2*(99-90)/10.0, "apiServerWrites": 100.0,
	})
	// Counts that went back are resets: the later counts are the increase.
	// The commits' did not change.
	sameValues(t, got["fault"].(map[string]any), map[string]any{
		"walFsyncP99": 0.016 + 0.016*(990-980)/15.0, "walFsyncs": 1000.0,
		"backendCommits":    0.0,
		"leaderChanges":     1.0,
		"apiServerWriteP99": 0.025 + 0.025*(49.5-40)/10.0, "apiServerWrites": 50.0,
	})
	recovery := got["recovery"].(map[string]any)
	if _, ok := recovery["walFsyncP99"]; ok || !strings.Contains(recovery["error"].(string), "500 Internal Server Error") {
		t.Errorf("recovery = %v, want no etcd measurements and etcd's error", recovery)
	}
	if recovery["apiServerWrites"] != 0.0 {
		t.Errorf("recovery apiServerWrites = %v, want 0: the API server answered", recovery["apiServerWrites"])
	}
	if errs := got["errors"].([]string); len(errs) != 1 || !strings.HasPrefix(errs[0], "recovery: "+etcdURL) {
		t.Errorf("errors = %q, want the recovery's etcd error", errs)
	}
	if d := got["walFsyncP99OverBaseline"].(float64); math.Abs(d-(0.016+0.016*10/15.0-0.128-0.128*98/100.0)) > 1e-9 {
		t.Errorf("walFsyncP99OverBaseline = %v, want fault minus baseline", d)
	}
}
