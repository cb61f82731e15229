package traffic

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// class is an error class; noClass is a request answered without error.
type class int

const (
	refused class = iota
	reset
	timeout
	overload
	other
	http502
	http503
	http504
	http5xx
	numClasses

	noClass class = -1
)

var classNames = [numClasses]string{"refused", "reset", "timeout", "overload", "other", "http502", "http503", "http504", "http5xx"}

// topLevel are the names Measure puts beside the windows'.
var topLevel = map[string]bool{
	"requests": true, "answered": true, "errors": true, "errorRatio": true, "status": true,
	"errorsByClass": true, "latency": true, "rate": true, "achievedRate": true, "sendLagP99": true,
	"inFlight": true, "errorRatioOverBaseline": true, "latencyP99OverBaseline": true,
}

// alwaysStatus are the codes objectives most often read: present even when
// 0 so that traffic.status["502"] does not fail as a missing key.
var alwaysStatus = []string{"500", "502", "503", "504"}

func class5xx(status int) class {
	switch status {
	case 502:
		return http502
	case 503:
		return http503
	case 504:
		return http504
	}
	return http5xx
}

// classify names what went wrong with a request that got no answer.
func classify(err error) class {
	var dns *net.DNSError
	switch {
	case errors.Is(err, errOverload):
		return overload
	case errors.As(err, &dns): // even a DNS timeout is about DNS, not the server
		return other
	case errors.Is(err, syscall.ECONNREFUSED):
		return refused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		// net/http's errServerClosedIdle, unexported: the server closed a
		// kept-alive connection as the request went out, and the request
		// could not be retried (not idempotent).
		strings.Contains(err.Error(), "server closed idle connection"):
		return reset
	case isTimeout(err):
		return timeout
	}
	return other
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.ETIMEDOUT) {
		return true
	}
	// url.Error's Timeout looks only one level down, so walk the chain.
	for e := err; e != nil; e = errors.Unwrap(e) {
		if t, ok := e.(interface{ Timeout() bool }); ok && t.Timeout() {
			return true
		}
	}
	return false
}

// outcome of one request.
type outcome struct {
	status  int // 0 when not answered
	class   class
	latency time.Duration // from the scheduled send time; answered only
}

// tally counts the outcomes of a window, or of all.
type tally struct {
	requests, answered, errors int64
	status                     map[int]int64
	classes                    [numClasses]int64
	latency                    *hdrhistogram.Histogram // µs, answered only
}

func newTally() tally {
	return tally{status: map[int]int64{}, latency: hdr(3)}
}

func (t *tally) add(o outcome) {
	t.requests++
	if o.class != noClass {
		t.errors++
		t.classes[o.class]++
	}
	if o.status != 0 {
		t.answered++
		t.status[o.status]++
		_ = t.latency.RecordValue(micros(o.latency, t.latency))
	}
}

func (t *tally) measure() map[string]any {
	status := map[string]any{}
	for _, code := range alwaysStatus {
		status[code] = int64(0)
	}
	for code, n := range t.status {
		status[strconv.Itoa(code)] = n
	}
	classes := map[string]any{}
	for c, n := range t.classes {
		classes[classNames[c]] = n
	}
	ratio := 0.0
	if t.requests > 0 {
		ratio = float64(t.errors) / float64(t.requests)
	}
	return map[string]any{
		"requests":      t.requests,
		"answered":      t.answered,
		"errors":        t.errors,
		"errorRatio":    ratio,
		"status":        status,
		"errorsByClass": classes,
		"latency":       latencies(t.latency),
	}
}

func latencies(h *hdrhistogram.Histogram) map[string]any {
	m := map[string]any{"p50": 0.0, "p90": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0, "mean": 0.0}
	if h.TotalCount() == 0 {
		return m
	}
	q := h.ValueAtPercentiles([]float64{50, 90, 99, 99.9})
	m["p50"], m["p90"], m["p99"], m["p999"] = seconds(q[50]), seconds(q[90]), seconds(q[99]), seconds(q[99.9])
	m["max"] = seconds(h.Max())
	m["mean"] = h.Mean() / 1e6
	return m
}

// micros is d in whole microseconds, within what h can hold.
func micros(d time.Duration, h *hdrhistogram.Histogram) int64 {
	return min(max(d.Microseconds(), 1), h.HighestTrackableValue())
}

func seconds(us int64) float64 { return float64(us) / 1e6 }

// Second is one second of the run, by scheduled send time.
type Second struct {
	Start time.Time
	// Sent is how many requests scheduled in this second left (overload
	// ones did not: they are in Errors).
	Sent   int
	Status map[int]int
	Errors map[string]int
	// LatencyP50 and LatencyP99 are of the answered requests, in seconds,
	// at 2 significant digits.
	LatencyP50, LatencyP99 float64
}

// second is a Second being tallied. Its histogram is kept only while
// results may still come in (Timeout and a grace after the second ends),
// then folded into two percentiles, so an hour of seconds stays small.
type second struct {
	sent     int
	status   map[int]int
	errors   [numClasses]int
	hist     *hdrhistogram.Histogram // nil once retired
	p50, p99 float64
}

// stats holds every tally; the Prober's mutex guards it.
type stats struct {
	windows  []Window
	all      tally
	byWindow []tally
	lags     *hdrhistogram.Histogram // µs

	start   time.Time
	seconds []second
	live    int // seconds[live:] still have their histograms
	horizon int // a second's histogram is retired this many seconds later
	spare   []*hdrhistogram.Histogram
}

func (s *stats) init(cfg Config) {
	s.windows = cfg.Windows
	s.all = newTally()
	for range s.windows {
		s.byWindow = append(s.byWindow, newTally())
	}
	s.lags = hdr(3)
	// A request scheduled in second k ends by k+1+Timeout plus its send
	// lag; two seconds of grace cover the lag.
	s.horizon = int((cfg.Timeout+time.Second-1)/time.Second) + 3
}

func (s *stats) begin(start time.Time) { s.start = start }

// window is the index of the window sched belongs to.
func (s *stats) window(sched time.Time) int {
	i := sort.Search(len(s.windows), func(i int) bool { return s.windows[i].Start.After(sched) })
	return max(i-1, 0)
}

// second is the tally of the second sched is in, made if need be.
func (s *stats) second(sched time.Time) *second {
	k := max(int(sched.Sub(s.start)/time.Second), 0)
	for len(s.seconds) <= k {
		var h *hdrhistogram.Histogram
		if n := len(s.spare); n > 0 {
			h, s.spare = s.spare[n-1], s.spare[:n-1]
		} else {
			h = hdr(2)
		}
		s.seconds = append(s.seconds, second{hist: h})
		s.retire(len(s.seconds) - 1 - s.horizon)
	}
	return &s.seconds[k]
}

// retire folds the histograms of the seconds before upTo into percentiles.
func (s *stats) retire(upTo int) {
	for ; s.live < upTo && s.live < len(s.seconds); s.live++ {
		sec := &s.seconds[s.live]
		sec.p50, sec.p99 = percentiles(sec.hist)
		sec.hist.Reset()
		s.spare = append(s.spare, sec.hist)
		sec.hist = nil
	}
}

func percentiles(h *hdrhistogram.Histogram) (p50, p99 float64) {
	if h.TotalCount() == 0 {
		return 0, 0
	}
	q := h.ValueAtPercentiles([]float64{50, 99})
	return seconds(q[50]), seconds(q[99])
}

func (s *stats) sent(sched time.Time) { s.second(sched).sent++ }

func (s *stats) lag(d time.Duration) { _ = s.lags.RecordValue(micros(d, s.lags)) }

func (s *stats) add(sched time.Time, o outcome) {
	s.all.add(o)
	s.byWindow[s.window(sched)].add(o)
	sec := s.second(sched)
	if o.class != noClass {
		sec.errors[o.class]++
	}
	if o.status != 0 {
		if sec.status == nil {
			sec.status = map[int]int{}
		}
		sec.status[o.status]++
		if sec.hist != nil { // a straggler after retirement keeps its counts only
			_ = sec.hist.RecordValue(micros(o.latency, sec.hist))
		}
	}
}

// end retires every second: no more results will come.
func (s *stats) end() { s.retire(len(s.seconds)) }

// Measure returns the measurements at now, as plain values (int64, float64,
// and maps of them) for CEL objectives:
//
//   - requests: scheduled sends whose outcome is known (answered, failed,
//     or not sent for overload); requests still in flight are not counted
//     until they end (see inFlight).
//   - answered: requests that got a status and a whole body.
//   - errors: 5xx answers and requests that got no answer.
//   - errorRatio: errors / requests, 0 before any request.
//   - status: answers by code ("200": n); "500", "502", "503" and "504"
//     are always there.
//   - errorsByClass: refused, reset, timeout, overload, other, http502,
//     http503, http504, http5xx: always all there.
//   - latency: p50, p90, p99, p999, max and mean of the answered requests,
//     in seconds from their scheduled send time.
//   - rate: the configured rate; achievedRate: requests that left per
//     second of the run so far.
//   - sendLagP99: the 99th percentile of how late requests left, seconds.
//   - inFlight: requests sent and not yet ended.
//   - WINDOW: for each window, by name, requests, answered, errors,
//     errorRatio, status, errorsByClass and latency of its requests.
//   - errorRatioOverBaseline and latencyP99OverBaseline (seconds): the
//     "fault" window's errorRatio and latency p99 minus the "baseline"
//     window's, when both windows exist.
func (p *Prober) Measure(now time.Time) map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &p.stats
	m := s.all.measure()
	m["rate"] = p.cfg.Rate
	achieved := 0.0
	if !p.start.IsZero() {
		end := now
		if !p.stopped.IsZero() && p.stopped.Before(end) {
			end = p.stopped
		}
		if elapsed := end.Sub(p.start).Seconds(); elapsed > 0 {
			achieved = float64(p.sent) / elapsed
		}
	}
	m["achievedRate"] = achieved
	m["sendLagP99"] = seconds(s.lags.ValueAtQuantile(99))
	m["inFlight"] = p.inFlight.Load()
	baseline, fault := -1, -1
	for i, w := range s.windows {
		m[w.Name] = s.byWindow[i].measure()
		switch w.Name {
		case "baseline":
			baseline = i
		case "fault":
			fault = i
		}
	}
	if baseline >= 0 && fault >= 0 {
		b, f := m["baseline"].(map[string]any), m["fault"].(map[string]any)
		m["errorRatioOverBaseline"] = f["errorRatio"].(float64) - b["errorRatio"].(float64)
		m["latencyP99OverBaseline"] = f["latency"].(map[string]any)["p99"].(float64) - b["latency"].(map[string]any)["p99"].(float64)
	}
	return m
}

// Timeline returns the run second by second, oldest first, by scheduled
// send time. Seconds whose requests may still be in flight are partial.
func (p *Prober) Timeline() []Second {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Second, len(p.stats.seconds))
	for k := range p.stats.seconds {
		sec := &p.stats.seconds[k]
		o := Second{Start: p.start.Add(time.Duration(k) * time.Second), Sent: sec.sent, Status: map[int]int{}, Errors: map[string]int{}}
		for code, n := range sec.status {
			o.Status[code] = n
		}
		for c, n := range sec.errors {
			if n > 0 {
				o.Errors[classNames[c]] = n
			}
		}
		if sec.hist != nil {
			o.LatencyP50, o.LatencyP99 = percentiles(sec.hist)
		} else {
			o.LatencyP50, o.LatencyP99 = sec.p50, sec.p99
		}
		out[k] = o
	}
	return out
}

// Lag is how late the scheduler sent requests: the time a request actually
// left minus its scheduled time, over every request sent and ended.
type Lag struct {
	Count                    int64
	P50, P90, P99, P999, Max time.Duration
}

// SendLag reports the scheduler's lateness, to judge the prober itself: a
// high lag means it could not keep its rate (too little CPU).
func (p *Prober) SendLag() Lag {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.stats.lags
	if h.TotalCount() == 0 {
		return Lag{}
	}
	q := h.ValueAtPercentiles([]float64{50, 90, 99, 99.9})
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	return Lag{Count: h.TotalCount(), P50: us(q[50]), P90: us(q[90]), P99: us(q[99]), P999: us(q[99.9]), Max: us(h.Max())}
}
