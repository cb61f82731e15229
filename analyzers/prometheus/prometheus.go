// Package prometheus measures what the control plane went through, from
// its own metrics: etcd's WAL fsync and backend commit latency, its leader
// changes and the API server's write latency, in a baseline window before
// the faults, the fault window and a recovery window after, plus PromQL
// queries of your own judged by CEL conditions as Argo Rollouts'
// Prometheus metrics are.
//
// The built-ins come from one of two sources: a Prometheus server, asked
// for each window once it ends; or, where none runs, the components'
// /metrics read directly at the windows' boundaries, whose histograms'
// differences give the windows' quantiles as histogram_quantile would.
//
// The caller marks the boundaries as they come; the network work happens
// in Run, so that Measure, called from a reconciler, only reads.
package prometheus

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"k8s.io/utils/clock"
)

// Boundary is an instant that starts or ends a window.
type Boundary int

const (
	BaselineStart Boundary = iota
	FaultStart
	FaultEnd
	RecoveryEnd
	numBoundaries
)

var boundaryNames = [numBoundaries]string{"baseline start", "fault start", "fault end", "recovery end"}

func (b Boundary) String() string { return boundaryNames[b] }

// windows are measured between two boundaries each.
var windows = []struct {
	name     string
	from, to Boundary
}{
	{"baseline", BaselineStart, FaultStart},
	{"fault", FaultStart, FaultEnd},
	{"recovery", FaultEnd, RecoveryEnd},
}

// Config says where the metrics come from: set Address or Scrape.
type Config struct {
	// Address of a Prometheus server, such as
	// http://prometheus.monitoring:9090.
	Address string
	// Client for Address; a plain one when nil.
	Client *http.Client
	// Scrape reads the components' /metrics instead.
	Scrape *Scrape
	// Queries need Address.
	Queries []Query
}

// Scrape names the /metrics read directly.
type Scrape struct {
	// Etcd are its members' metrics endpoints, summed.
	Etcd []Target
	// APIServer is the API server's, usually with credentials.
	APIServer *Target
}

// Target is a /metrics endpoint.
type Target struct {
	URL string
	// Client reads URL; http.DefaultClient when nil.
	Client *http.Client
}

// Validate reports every field that is wrong, each error naming its field.
func (c Config) Validate() error {
	_, err := c.queries()
	return err
}

// queries checks c and compiles its queries.
func (c Config) queries() ([]*query, error) {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	badURL := func(field, s string) {
		if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("%s: must be an http or https URL, got %q", field, s)
		}
	}
	switch {
	case (c.Address == "") == (c.Scrape == nil):
		bad("set exactly one of address (a Prometheus server) or scrape (read /metrics directly)")
	case c.Address != "":
		badURL("address", c.Address)
	case len(c.Scrape.Etcd) == 0 && c.Scrape.APIServer == nil:
		bad("scrape: name etcd's metrics URLs, the API server's, or both")
	default:
		for i, t := range c.Scrape.Etcd {
			badURL(fmt.Sprintf("scrape.etcd[%d]", i), t.URL)
		}
		if c.Scrape.APIServer != nil {
			badURL("scrape.apiServer", c.Scrape.APIServer.URL)
		}
	}
	if len(c.Queries) > 0 && c.Address == "" {
		bad("queries: need address (a Prometheus server)")
	}
	var qs []*query
	seen := map[string]bool{}
	for i, qc := range c.Queries {
		q, err := newQuery(i, qc)
		if err != nil {
			errs = append(errs, err)
		}
		if seen[qc.Name] {
			bad("queries[%d].name: %q is used twice", i, qc.Name)
		}
		seen[qc.Name] = true
		qs = append(qs, q)
	}
	return qs, errors.Join(errs...)
}

// source measures the built-ins: a Prometheus server or a scraper.
type source interface {
	// mark is called at each boundary, once.
	mark(ctx context.Context, b Boundary, at time.Time)
	// window measures the built-ins between two marked boundaries,
	// leaving out those it could not measure, and says why.
	window(ctx context.Context, from, to Boundary) (map[string]any, error)
}

// mark is a boundary and when it came.
type mark struct {
	b  Boundary
	at time.Time
}

// Analyzer measures the windows and the queries. Make it with New, Run it
// once, and Mark the boundaries.
type Analyzer struct {
	clk     clock.WithTicker
	src     source
	api     querier // nil without a server
	queries []*query
	marks   chan mark
	// done[b] closes once the source has marked b.
	done    [numBoundaries]chan struct{}
	running atomic.Bool

	mu      sync.Mutex
	marked  [numBoundaries]time.Time
	windows map[string]map[string]any
	errs    []string
}

// New validates cfg and makes an analyzer; clk stamps the boundaries and
// paces the queries (nil means the real clock).
func New(cfg Config, clk clock.WithTicker) (*Analyzer, error) {
	qs, err := cfg.queries()
	if err != nil {
		return nil, err
	}
	if cfg.Scrape != nil {
		return newAnalyzer(qs, clk, newScraper(*cfg.Scrape), nil), nil
	}
	c, err := promapi.NewClient(promapi.Config{Address: cfg.Address, Client: cfg.Client})
	if err != nil {
		return nil, fmt.Errorf("address: %w", err)
	}
	api := promv1.NewAPI(c)
	return newAnalyzer(qs, clk, &server{api: api}, api), nil
}

func newAnalyzer(qs []*query, clk clock.WithTicker, src source, api querier) *Analyzer {
	if clk == nil {
		clk = clock.RealClock{}
	}
	a := &Analyzer{clk: clk, src: src, api: api, queries: qs, marks: make(chan mark, numBoundaries), windows: map[string]map[string]any{}}
	for b := range a.done {
		a.done[b] = make(chan struct{})
	}
	return a
}

func (a *Analyzer) Name() string { return "prometheus" }

// Mark marks a boundary now. It never blocks: Run does the work. A
// boundary marked again keeps its first instant, so that a reconciler may
// mark on every pass.
func (a *Analyzer) Mark(b Boundary) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if b < 0 || b >= numBoundaries || !a.marked[b].IsZero() {
		return
	}
	a.marked[b] = a.clk.Now()
	a.marks <- mark{b, a.marked[b]} // room for every boundary once
}

// Run takes the marks as they come: the source's snapshot, the window
// each ends, and the queries, measured from the first mark to the
// recovery's end. It returns once the recovery's end is measured, or when
// ctx ends.
func (a *Analyzer) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("prometheus: an analyzer runs only once")
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	var toQueries []chan mark // once the queries run
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-a.marks:
			if toQueries == nil && m.b != RecoveryEnd {
				for _, q := range a.queries {
					ch := make(chan mark, numBoundaries)
					toQueries = append(toQueries, ch)
					wg.Go(func() { q.run(ctx, a.clk, a.api, ch) })
				}
			}
			for _, ch := range toQueries {
				ch <- m
			}
			wg.Go(func() { a.take(ctx, m) })
			if m.b == RecoveryEnd {
				if toQueries == nil { // marked alone: the queries never ran
					for _, q := range a.queries {
						q.finish()
					}
				}
				return nil
			}
		}
	}
}

// take has the source mark m, then measures the window m ends once the
// source has marked its start.
func (a *Analyzer) take(ctx context.Context, m mark) {
	a.src.mark(ctx, m.b, m.at)
	close(a.done[m.b])
	for _, w := range windows {
		if w.to != m.b {
			continue
		}
		a.mu.Lock()
		started := !a.marked[w.from].IsZero()
		a.mu.Unlock()
		if !started {
			a.fail(fmt.Sprintf("%s: not measured: %s was not marked", w.name, w.from))
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-a.done[w.from]:
		}
		vals, err := a.src.window(ctx, w.from, w.to)
		a.mu.Lock()
		if err != nil {
			vals["error"] = err.Error()
			a.errs = append(a.errs, w.name+": "+err.Error())
		}
		a.windows[w.name] = vals
		a.mu.Unlock()
	}
}

func (a *Analyzer) fail(msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.errs = append(a.errs, msg)
}

// Measure returns what is measured so far; it only reads. Durations are in
// seconds, as traffic's.
//
//   - baseline, fault, recovery: each once it has ended, with the
//     built-ins it could measure: walFsyncP99 and backendCommitP99 (etcd),
//     apiServerWriteP99 (POST, PUT, PATCH, DELETE and APPLY requests of
//     every resource), with the number of observations they are of:
//     walFsyncs, backendCommits, apiServerWrites (0: a quiet window; no
//     key: not measured, and so no quantile either); and leaderChanges,
//     as the etcd member that saw the most counts them. A window that
//     could not measure everything says why in error.
//   - walFsyncP99OverBaseline, backendCommitP99OverBaseline and
//     apiServerWriteP99OverBaseline: fault minus baseline, when both are
//     there.
//   - queries.NAME: result (the last), baseline (result at the end of the
//     baseline window), measurements, failed, errors, phase (Running, then
//     Successful, Failed or Error) and error (the last one's); and
//     windows.baseline|fault|recovery: min, max, mean and points of the
//     query over each window, asked as a range query.
//   - errors: what went wrong, such as a target that did not answer.
func (a *Analyzer) Measure(time.Time) map[string]any {
	a.mu.Lock()
	m := map[string]any{"errors": append([]string{}, a.errs...)}
	for name, w := range a.windows {
		m[name] = maps.Clone(w)
	}
	a.mu.Unlock()
	b, _ := m["baseline"].(map[string]any)
	f, _ := m["fault"].(map[string]any)
	for _, name := range overBaseline {
		bv, ok1 := b[name].(float64)
		fv, ok2 := f[name].(float64)
		if ok1 && ok2 {
			m[name+"OverBaseline"] = fv - bv
		}
	}
	if len(a.queries) > 0 {
		qs := map[string]any{}
		for _, q := range a.queries {
			qs[q.Name] = q.values()
		}
		m["queries"] = qs
	}
	return m
}
