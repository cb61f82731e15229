// Package traffic is an open-loop, constant-rate HTTP prober: it measures
// what the users of a service felt while the service went through a fault.
//
// Open loop (the wrk2 and vegeta model): the i-th request is scheduled at
// start + i/rate and leaves at that time whether or not earlier requests
// have answered, so a stalled server cannot slow the prober down and hide
// its own slowness (no coordinated omission). For the same reason latency is
// measured from the scheduled send time, not from when the request actually
// left: a request the prober sent late because it was itself held up still
// counts the whole wait the user would have had. How late the scheduler
// actually sent is measured apart, as the send lag.
//
// It knows nothing of Kubernetes or of faults; the Experiment controller
// runs one per experiment and objectives read its measurements as
// traffic.NAME (see Measure).
//
// # Outcomes
//
// A request is answered when its status line and its whole body arrive;
// its status is counted by code. 5xx answers are errors; 1xx to 4xx are
// not (redirects are not followed: a 3xx is counted as itself). A request
// that gets no answer is an error of one class:
//
//   - refused: the connection was refused (ECONNREFUSED).
//   - reset: the connection was reset or closed before the answer was
//     complete (ECONNRESET, EPIPE, ECONNABORTED, EOF, unexpected EOF).
//   - timeout: no answer within Config.Timeout of being sent, or a TCP
//     timeout (ETIMEDOUT).
//   - overload: the prober could not send it at its time because
//     Config.MaxInFlight requests were outstanding. Such requests are
//     counted, not skipped, so an overloaded prober shows up as errors.
//   - other: anything else: no route, DNS, TLS, a malformed answer.
//
// 5xx answers are also error classes: http502, http503, http504, and
// http5xx for the other 5xx codes.
//
// A request that failed on a reused keep-alive connection and that Go's
// transport retried on a new one counts as the retry's outcome: what the
// client returns is what is recorded.
//
// # Units
//
// Counts are int64; rates are requests per second; latencies and lags are
// float64 seconds. Latencies are of answered requests only, from HDR
// histograms (1 µs to 120 s, 3 significant digits).
package traffic

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"
)

const (
	// MaxRate is the highest rate, in requests per second.
	MaxRate = 20000
	// DefaultTimeout is the per-request timeout when Config.Timeout is 0.
	DefaultTimeout = 2 * time.Second
	// MaxTimeout is the longest per-request timeout.
	MaxTimeout = time.Minute
	// MaxInFlightLimit is the highest Config.MaxInFlight: every in-flight
	// request holds a goroutine and often a connection.
	MaxInFlightLimit = 100000
	// defaultMaxInFlight caps the default MaxInFlight (Rate × Timeout):
	// enough for 5,000 req/s against a server that never answers within 2s.
	defaultMaxInFlight = 10000
)

// Methods are the request methods a Config may use, as the Experiment API.
var Methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// Window names a period of the run by its start; a result belongs to the
// last window whose Start <= its scheduled send time (results before the
// first window's start go to the first window).
type Window struct {
	Name  string
	Start time.Time
}

// Config of a prober.
type Config struct {
	// URL requested, http:// or https:// only. A host name is resolved in
	// the caller's network, even when Netns is set.
	URL string
	// Method of the requests; GET when empty.
	Method string
	// Headers sent with every request; "Host" sets the Host header.
	Headers map[string]string
	// Body sent with every request; optional.
	Body []byte
	// Rate in requests per second, more than 0 and at most MaxRate.
	Rate float64
	// Timeout of each request from when it is sent; DefaultTimeout when 0,
	// at most MaxTimeout.
	Timeout time.Duration
	// Netns is the path of a network namespace file (/var/run/netns/X or
	// /proc/PID/ns/net) whose network the requests use; empty means the
	// caller's.
	Netns string
	// Windows split the results, in order of Start; when empty there is one
	// window, "all". Names must differ from the top-level measurement names.
	Windows []Window
	// NewConnections sends each request on a connection of its own, as
	// many independent users do: a load balancer (kube-proxy, an ingress)
	// then places every request anew, instead of pinning a few kept-alive
	// connections to a few endpoints.
	NewConnections bool
	// MaxInFlight bounds concurrent requests (and so memory); a request
	// whose send time comes while MaxInFlight are outstanding is an error
	// of class overload. When 0: Rate × Timeout, at least 64 and at most
	// 10,000.
	MaxInFlight int
}

// withDefaults fills in what is left empty.
func (c Config) withDefaults() Config {
	if c.Method == "" {
		c.Method = http.MethodGet
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxInFlight == 0 && c.Rate > 0 && c.Rate <= MaxRate && c.Timeout > 0 {
		n := math.Ceil(c.Rate * c.Timeout.Seconds())
		c.MaxInFlight = int(min(max(n, 64), defaultMaxInFlight))
	}
	if len(c.Windows) == 0 {
		c.Windows = []Window{{Name: "all"}}
	}
	return c
}

// Validate reports every field that is wrong, each error naming its field.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("url: must be an http or https URL, got %q", c.URL)
	}
	if c.Method != "" && !slices.Contains(Methods, c.Method) {
		bad("method: must be one of %s, got %q", strings.Join(Methods, ", "), c.Method)
	}
	for k, v := range c.Headers {
		if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
			bad("headers: %q: %q is not a valid header", k, v)
		}
	}
	if !(c.Rate > 0 && c.Rate <= MaxRate) { // also refuses NaN
		bad("rate: must be more than 0 and at most %d requests per second, got %v", MaxRate, c.Rate)
	}
	if c.Timeout < 0 || c.Timeout > MaxTimeout {
		bad("timeout: must be more than 0s and at most %s (0 means %s), got %s", MaxTimeout, DefaultTimeout, c.Timeout)
	}
	if c.MaxInFlight < 0 || c.MaxInFlight > MaxInFlightLimit {
		bad("maxInFlight: must be between 1 and %d (0 means Rate × Timeout), got %d", MaxInFlightLimit, c.MaxInFlight)
	}
	if c.Netns != "" {
		if err := checkNetns(c.Netns); err != nil {
			bad("netns: %w", err)
		}
	}
	seen := map[string]bool{}
	for i, w := range c.Windows {
		switch {
		case w.Name == "":
			bad("windows[%d].name: must not be empty", i)
		case topLevel[w.Name]:
			bad("windows[%d].name: %q is a measurement's name; choose another", i, w.Name)
		case seen[w.Name]:
			bad("windows[%d].name: %q is used twice", i, w.Name)
		}
		seen[w.Name] = true
		if i > 0 && w.Start.Before(c.Windows[i-1].Start) {
			bad("windows[%d].start: must not be before windows[%d].start", i, i-1)
		}
	}
	return errors.Join(errs...)
}

// checkNetns tells whether path is a namespace file that exists.
func checkNetns(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Errorf("%q: %w", path, err)
	}
	if st.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("%q is not a namespace file", path)
	}
	return nil
}

// Prober sends the requests and tallies their outcomes. Make it with New;
// Run it once.
type Prober struct {
	cfg  Config
	clk  clock.PassiveClock
	tmpl *http.Request

	started  atomic.Bool
	inFlight atomic.Int64

	mu      sync.Mutex
	start   time.Time // zero until Run starts
	stopped time.Time // when the scheduler stopped; zero while it runs
	sent    int64     // requests that left (not overload)
	stats   stats
}

// New validates cfg and makes a prober; clk stamps the times (nil means the
// real clock). When clk is a clock.Clock other than clock.RealClock, its
// timers also pace the sends, so tests can step a fake clock.
// Name is the prefix objectives read the prober's measurements under.
func (p *Prober) Name() string { return "traffic" }

func New(cfg Config, clk clock.PassiveClock) (*Prober, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if clk == nil {
		clk = clock.RealClock{}
	}
	tmpl, err := http.NewRequest(cfg.Method, cfg.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	for k, v := range cfg.Headers {
		if http.CanonicalHeaderKey(k) == "Host" {
			tmpl.Host = v
			continue
		}
		tmpl.Header.Set(k, v)
	}
	if len(cfg.Body) > 0 {
		body := cfg.Body
		tmpl.ContentLength = int64(len(body))
		// GetBody lets the transport retry a request on a new connection.
		tmpl.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	p := &Prober{cfg: cfg, clk: clk, tmpl: tmpl}
	p.stats.init(cfg)
	return p, nil
}

// Run sends requests on schedule until ctx ends, then waits for the
// requests in flight to end (each within Timeout). It returns an error only
// when it cannot start or cannot keep pacing; a Prober runs once.
func (p *Prober) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("traffic: a prober runs only once")
	}
	dial := (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext
	if p.cfg.Netns != "" {
		d, err := newNetnsDialer(p.cfg.Netns)
		if err != nil {
			return fmt.Errorf("netns: %w", err)
		}
		defer d.close()
		dial = d.DialContext
	}
	transport := &http.Transport{
		Proxy:               nil, // straight to the target: a proxy would measure itself
		DialContext:         dial,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: p.cfg.MaxInFlight,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // spend the prober's CPU on requests, not on gunzip
		DisableKeepAlives:   p.cfg.NewConnections,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	pace, err := newPacer(ctx, p.clk)
	if err != nil {
		return err
	}
	defer pace.close()

	// Requests in flight outlive ctx: they end on their own timeout, so
	// that stopping the prober does not turn them into errors.
	base := context.WithoutCancel(ctx)
	w := &workers{jobs: make(chan time.Time, p.cfg.MaxInFlight), max: int64(p.cfg.MaxInFlight)}
	work := func(sched time.Time) { p.do(base, client, sched) }
	start := p.clk.Now()
	p.mu.Lock()
	p.start = start
	p.stats.begin(start)
	p.mu.Unlock()
	interval := float64(time.Second) / p.cfg.Rate
	var runErr error
	for i := int64(0); ; i++ {
		// From the start each time, so rounding never accumulates.
		sched := start.Add(time.Duration(float64(i) * interval))
		if d := sched.Sub(p.clk.Now()); d > 0 {
			if err := pace.wait(ctx, d); err != nil {
				if ctx.Err() == nil {
					runErr = fmt.Errorf("traffic: pacing: %w", err)
				}
				break
			}
		}
		if ctx.Err() != nil {
			break
		}
		if p.inFlight.Load() >= int64(p.cfg.MaxInFlight) {
			p.record(sched, time.Time{}, time.Time{}, 0, errOverload)
			continue
		}
		p.inFlight.Add(1)
		p.mu.Lock()
		p.sent++
		p.stats.sent(sched)
		p.mu.Unlock()
		w.send(sched, work)
	}
	p.mu.Lock()
	p.stopped = p.clk.Now()
	p.mu.Unlock()
	w.close()
	p.mu.Lock()
	p.stats.end()
	p.mu.Unlock()
	return runErr
}

// workers send the requests. A pool rather than a goroutine per request:
// the scheduler then never allocates (a goroutine and its closure each
// time), so it is never drafted to assist the garbage collector, and a
// worker's stack, grown once to what net/http needs, is not grown again
// for every request.
type workers struct {
	jobs    chan time.Time // never full: at most MaxInFlight are in flight
	max     int64
	running atomic.Int64
	idle    atomic.Int64 // waiting for a job, or about to
	wg      sync.WaitGroup
}

// spareWorkers is how many idle workers are kept: after a burst (a server
// that stopped answering), the others end.
const spareWorkers = 64

func (w *workers) send(sched time.Time, work func(time.Time)) {
	if w.idle.Load() == 0 && w.running.Load() < w.max {
		w.running.Add(1)
		w.idle.Add(1)
		w.wg.Add(1)
		go w.loop(work)
	}
	w.jobs <- sched
}

func (w *workers) loop(work func(time.Time)) {
	defer w.wg.Done()
	defer w.running.Add(-1)
	for sched := range w.jobs {
		w.idle.Add(-1)
		work(sched)
		if w.idle.Load() >= spareWorkers {
			return
		}
		w.idle.Add(1)
	}
}

// close waits for the jobs sent to end.
func (w *workers) close() {
	close(w.jobs)
	w.wg.Wait()
}

// errOverload marks a request not sent because too many were in flight.
var errOverload = errors.New("too many requests in flight")

// do sends one request scheduled at sched and records its outcome.
func (p *Prober) do(base context.Context, client *http.Client, sched time.Time) {
	defer p.inFlight.Add(-1)
	sent := p.clk.Now()
	ctx, cancel := context.WithTimeout(base, p.cfg.Timeout)
	defer cancel()
	req := p.tmpl.WithContext(ctx)
	if req.GetBody != nil {
		req.Body, _ = req.GetBody()
	}
	status := 0
	resp, err := client.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil {
			status = resp.StatusCode
		}
	}
	p.record(sched, sent, p.clk.Now(), status, err)
}

// record tallies one outcome: sent and done are zero for overload.
func (p *Prober) record(sched, sent, done time.Time, status int, err error) {
	o := outcome{status: status, class: noClass}
	switch {
	case err != nil:
		o.class = classify(err)
	case status >= 500 && status <= 599:
		o.class = class5xx(status)
	}
	if err == nil {
		o.latency = done.Sub(sched)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if o.class != overload {
		p.stats.lag(sent.Sub(sched))
	}
	p.stats.add(sched, o)
}

// hdr makes a histogram of microseconds from 1 µs to 120 s.
func hdr(digits int) *hdrhistogram.Histogram {
	return hdrhistogram.New(1, 120_000_000, digits)
}
