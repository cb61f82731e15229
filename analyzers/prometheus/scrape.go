package prometheus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metrics are the series one target exposes of the families the built-ins
// read: by family, then by label set.
type metrics map[string]map[uint64]histogram

// since is what each series observed after earlier; a series earlier did
// not have started in between, from 0.
func (m metrics) since(earlier metrics) metrics {
	out := metrics{}
	for family, series := range m {
		out[family] = map[uint64]histogram{}
		for sig, h := range series {
			out[family][sig] = h.since(earlier[family][sig])
		}
	}
	return out
}

// accept asks for the protobuf format, cheaper to parse than text (the API
// server's /metrics runs to megabytes), as Prometheus itself does.
const accept = `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3`

// requestTimeout bounds each scrape and each PromQL query.
const requestTimeout = 20 * time.Second

// scrape reads one target's /metrics. Its errors do not repeat the URL:
// the window's error names the target.
func scrape(ctx context.Context, t Target) (metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	c := t.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New(resp.Status)
	}
	return parse(resp.Body, expfmt.ResponseFormat(resp.Header))
}

// parse keeps, of an exposition in format (text when unknown), the series
// the built-ins read: of the API server's requests, only the writes.
func parse(r io.Reader, format expfmt.Format) (metrics, error) {
	dec := expfmt.NewDecoder(r, format)
	m := metrics{}
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); errors.Is(err, io.EOF) {
			return m, nil
		} else if err != nil {
			return nil, err
		}
		name := mf.GetName()
		want := slices.ContainsFunc(builtins, func(b builtin) bool { return b.family == name })
		if !want {
			continue
		}
		series := map[uint64]histogram{}
		for _, s := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if name == apiRequests && !slices.Contains(writeVerbs, labels["verb"]) {
				continue
			}
			h, err := toHistogram(mf.GetType(), s)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			series[model.LabelsToSignature(labels)] = h
		}
		m[name] = series
	}
}

// toHistogram converts a histogram, or a counter as its one +Inf bucket.
func toHistogram(t dto.MetricType, s *dto.Metric) (histogram, error) {
	switch t {
	case dto.MetricType_COUNTER:
		return histogram{inf: s.GetCounter().GetValue()}, nil
	case dto.MetricType_HISTOGRAM:
		// The exposition leaves the +Inf bucket out: it is the count.
		ph := s.GetHistogram()
		h := histogram{inf: float64(ph.GetSampleCount())}
		if ph.SampleCountFloat != nil {
			h[inf] = ph.GetSampleCountFloat()
		}
		for _, b := range ph.GetBucket() {
			n := float64(b.GetCumulativeCount())
			if b.CumulativeCountFloat != nil {
				n = b.GetCumulativeCountFloat()
			}
			h[b.GetUpperBound()] = n
		}
		return h, nil
	}
	return nil, fmt.Errorf("is a %s, not a counter or a histogram", t)
}

// scraper reads etcd's and the API server's /metrics at each boundary and
// measures a window by the differences of its two boundaries' snapshots.
type scraper struct {
	targets []Target
	// apiServer is the index of the API server in targets, or -1.
	apiServer int

	mu    sync.Mutex
	snaps [numBoundaries][]reading // by target
}

// reading is one target's snapshot, or why there is none.
type reading struct {
	m   metrics
	err error
}

func newScraper(s Scrape) *scraper {
	sc := &scraper{targets: slices.Clone(s.Etcd), apiServer: -1}
	if s.APIServer != nil {
		sc.apiServer = len(sc.targets)
		sc.targets = append(sc.targets, *s.APIServer)
	}
	return sc
}

// mark reads every target at once, so that the snapshot is one instant.
func (s *scraper) mark(ctx context.Context, b Boundary, _ time.Time) {
	rs := make([]reading, len(s.targets))
	var wg sync.WaitGroup
	for i, t := range s.targets {
		wg.Go(func() {
			m, err := scrape(ctx, t)
			rs[i] = reading{m, err}
		})
	}
	wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snaps[b] = rs
}

// window measures the built-ins between two marked boundaries. A target
// missing from either snapshot leaves out the built-ins of its component
// (etcd or the API server), whose totals would be short.
func (s *scraper) window(_ context.Context, from, to Boundary) (map[string]any, error) {
	s.mu.Lock()
	a, b := s.snaps[from], s.snaps[to]
	s.mu.Unlock()
	var etcd, apiServer []metrics
	var errs []error
	etcdFailed := false
	for i, t := range s.targets {
		if err := errors.Join(a[i].err, b[i].err); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.URL, err))
			etcdFailed = etcdFailed || i != s.apiServer
			continue
		}
		if i == s.apiServer {
			apiServer = append(apiServer, b[i].m.since(a[i].m))
		} else {
			etcd = append(etcd, b[i].m.since(a[i].m))
		}
	}
	if etcdFailed {
		etcd = nil
	}
	out := map[string]any{}
	for _, bi := range builtins {
		from := etcd
		if bi.family == apiRequests {
			from = apiServer
		}
		if v, ok := bi.reduce(from); ok {
			out[bi.name] = v
		}
	}
	return out, errors.Join(errs...)
}
