package traffic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"faultline.dev/faultline/analyzers/slo"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func TestValidateNamesTheField(t *testing.T) {
	regular := filepath.Join(t.TempDir(), "not-a-namespace")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ok := Config{URL: "http://127.0.0.1:8080/", Rate: 100}
	cases := map[string]struct {
		change func(*Config)
		want   string // "" when the config is valid
	}{
		"a plain config is valid":                    {change: func(*Config) {}},
		"a zero timeout takes the default":           {change: func(c *Config) { c.Timeout = 0 }},
		"a rate of 0 is refused":                     {change: func(c *Config) { c.Rate = 0 }, want: "rate: must be more than 0 and at most 20000 requests per second, got 0"},
		"a rate above the maximum is refused":        {change: func(c *Config) { c.Rate = 20001 }, want: "rate: must be more than 0 and at most 20000 requests per second, got 20001"},
		"a URL that is not http or https is refused": {change: func(c *Config) { c.URL = "ftp://x" }, want: `url: must be an http or https URL, got "ftp://x"`},
		"an empty URL is refused":                    {change: func(c *Config) { c.URL = "" }, want: `url: must be an http or https URL, got ""`},
		"a URL without a host is refused":            {change: func(c *Config) { c.URL = "http:///path" }, want: "url: "},
		"an unknown method is refused":               {change: func(c *Config) { c.Method = "BREW" }, want: `method: must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, got "BREW"`},
		"a negative timeout is refused":              {change: func(c *Config) { c.Timeout = -time.Second }, want: "timeout: must be more than 0s and at most 1m0s"},
		"a timeout above a minute is refused":        {change: func(c *Config) { c.Timeout = 61 * time.Second }, want: "timeout: must be more than 0s and at most 1m0s (0 means 2s), got 1m1s"},
		"a network namespace that does not exist":    {change: func(c *Config) { c.Netns = "/var/run/netns/faultline-none" }, want: `netns: "/var/run/netns/faultline-none": no such file or directory`},
		"a network namespace that is a regular file": {change: func(c *Config) { c.Netns = regular }, want: "is not a namespace file"},
		"a header name with a space is refused":      {change: func(c *Config) { c.Headers = map[string]string{"X Bad": "1"} }, want: `headers: "X Bad"`},
		"a negative maxInFlight is refused":          {change: func(c *Config) { c.MaxInFlight = -1 }, want: "maxInFlight: must be between 1 and 100000"},
		"a window without a name is refused":         {change: func(c *Config) { c.Windows = []Window{{Start: t0}} }, want: "windows[0].name: must not be empty"},
		"a window named as a measurement is refused": {change: func(c *Config) { c.Windows = []Window{{Name: "status", Start: t0}} }, want: `windows[0].name: "status" is a measurement's name`},
		"two windows of the same name are refused":   {change: func(c *Config) { c.Windows = []Window{{Name: "a", Start: t0}, {Name: "a", Start: t0}} }, want: `windows[1].name: "a" is used twice`},
		"windows out of order are refused": {change: func(c *Config) {
			c.Windows = []Window{{Name: "a", Start: t0}, {Name: "b", Start: t0.Add(-time.Second)}}
		}, want: "windows[1].start: must not be before windows[0].start"},
		"windows in order, starting together, are valid": {change: func(c *Config) { c.Windows = []Window{{Name: "a", Start: t0}, {Name: "b", Start: t0}} }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := ok
			tc.change(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
			if _, nerr := New(c, nil); (nerr == nil) != (err == nil) {
				t.Errorf("New() = %v, Validate() = %v: they must agree", nerr, err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	cases := map[string]struct {
		cfg          Config
		wantTimeout  time.Duration
		wantInFlight int
	}{
		"a slow rate keeps at least 64 in flight":  {cfg: Config{Rate: 1}, wantTimeout: 2 * time.Second, wantInFlight: 64},
		"the in-flight bound is rate × timeout":    {cfg: Config{Rate: 1000, Timeout: 3 * time.Second}, wantTimeout: 3 * time.Second, wantInFlight: 3000},
		"the default in-flight bound is capped":    {cfg: Config{Rate: 20000, Timeout: time.Minute}, wantTimeout: time.Minute, wantInFlight: 10000},
		"an explicit in-flight bound is kept":      {cfg: Config{Rate: 20000, MaxInFlight: 7}, wantTimeout: 2 * time.Second, wantInFlight: 7},
		"a fractional rate rounds the bound up":    {cfg: Config{Rate: 100.5, Timeout: time.Second}, wantTimeout: time.Second, wantInFlight: 101},
		"windows given are kept (checked below)":   {cfg: Config{Rate: 1, Windows: []Window{{Name: "x"}}}, wantTimeout: 2 * time.Second, wantInFlight: 64},
		"a tiny timeout still keeps 64 in flight":  {cfg: Config{Rate: 10, Timeout: time.Millisecond}, wantTimeout: time.Millisecond, wantInFlight: 64},
		"a low rate and the longest timeout":       {cfg: Config{Rate: 5, Timeout: time.Minute}, wantTimeout: time.Minute, wantInFlight: 300},
		"half a request a second, fractional rate": {cfg: Config{Rate: 0.5}, wantTimeout: 2 * time.Second, wantInFlight: 64},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := tc.cfg.withDefaults()
			if c.Timeout != tc.wantTimeout || c.MaxInFlight != tc.wantInFlight || c.Method != "GET" {
				t.Errorf("defaults: timeout %s, maxInFlight %d, method %q; want %s, %d, GET", c.Timeout, c.MaxInFlight, c.Method, tc.wantTimeout, tc.wantInFlight)
			}
			if want := max(len(tc.cfg.Windows), 1); len(c.Windows) != want {
				t.Errorf("%d windows, want %d", len(c.Windows), want)
			}
		})
	}
}

// drive runs p on a fake clock for exactly n scheduled sends, stepping the
// clock from one send time to the next. With settle, each request ends
// before the clock moves on, so every run is the same.
func drive(t *testing.T, p *Prober, fc *clocktesting.FakeClock, n int, settle bool, before func(i int)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	interval := time.Duration(float64(time.Second) / p.cfg.Rate)
	waitFor := func(what string, cond func() bool) {
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(100 * time.Microsecond) {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for %s", what)
			}
		}
	}
	for i := range n {
		if before != nil {
			before(i)
		}
		if i > 0 {
			fc.Step(interval)
		}
		// Send i has left once the scheduler waits for send i+1.
		waitFor("the scheduler to wait", fc.HasWaiters)
		if settle {
			waitFor("the requests in flight", func() bool { return p.inFlight.Load() == 0 })
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// get reads a measurement by a dotted path such as "errorsByClass.reset".
func get(m map[string]any, path string) any {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

// cycle answers with the codes in turn.
func cycle(codes ...int) http.HandlerFunc {
	var n atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		code := codes[int(n.Add(1)-1)%len(codes)]
		if code/100 == 3 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(code)
	}
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL + "/"
}

// hijack closes every connection as soon as a request has come on it;
// with rst, it resets the connection instead (SO_LINGER 0).
func hijack(rst bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		if rst {
			_ = c.(*net.TCPConn).SetLinger(0)
		}
		c.Close()
	}
}

// closedPort is a loopback URL on which nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/"
}

func TestOutcomesAreClassified(t *testing.T) {
	const n = 10
	cases := map[string]struct {
		url    func(t *testing.T) string
		change func(*Config)
		want   map[string]int64
	}{
		"answers are counted by code; 2xx, 3xx and 4xx are not errors, and redirects are not followed": {
			url:  func(t *testing.T) string { return serve(t, cycle(200, 404, 302, 200, 201)) },
			want: map[string]int64{"requests": n, "answered": n, "errors": 0, "status.200": 4, "status.404": 2, "status.302": 2, "status.201": 2, "status.502": 0},
		},
		"5xx are errors, with 502, 503 and 504 apart": {
			url: func(t *testing.T) string { return serve(t, cycle(500, 502, 503, 504, 501)) },
			want: map[string]int64{"requests": n, "answered": n, "errors": n, "status.500": 2, "status.502": 2, "status.503": 2, "status.504": 2, "status.501": 2,
				"errorsByClass.http502": 2, "errorsByClass.http503": 2, "errorsByClass.http504": 2, "errorsByClass.http5xx": 4, "errorsByClass.reset": 0},
		},
		"a closed port is refused": {
			url:  closedPort,
			want: map[string]int64{"requests": n, "answered": 0, "errors": n, "errorsByClass.refused": n, "status.500": 0},
		},
		"a connection closed before the answer is a reset": {
			url:  func(t *testing.T) string { return serve(t, hijack(false)) },
			want: map[string]int64{"requests": n, "errors": n, "errorsByClass.reset": n},
		},
		"a connection reset (SO_LINGER 0) is a reset": {
			url:  func(t *testing.T) string { return serve(t, hijack(true)) },
			want: map[string]int64{"requests": n, "errors": n, "errorsByClass.reset": n},
		},
		"a server slower than the timeout times out": {
			url: func(t *testing.T) string {
				return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					select {
					case <-r.Context().Done():
					case <-time.After(time.Minute):
					}
				}))
			},
			change: func(c *Config) { c.Timeout = 50 * time.Millisecond },
			want:   map[string]int64{"requests": n, "answered": 0, "errors": n, "errorsByClass.timeout": n},
		},
		"a body slower than the timeout times out, though the status came": {
			url: func(t *testing.T) string {
				return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(200)
					w.(http.Flusher).Flush()
					<-r.Context().Done()
				}))
			},
			change: func(c *Config) { c.Timeout = 50 * time.Millisecond },
			want:   map[string]int64{"requests": n, "answered": 0, "errors": n, "errorsByClass.timeout": n},
		},
		"a POST carries its body and headers on every request": {
			url: func(t *testing.T) string {
				return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					b, _ := io.ReadAll(r.Body)
					if r.Method != "POST" || string(b) != "ping" || r.Header.Get("X-Probe") != "1" || r.Host != "svc.example" {
						w.WriteHeader(400)
					}
				}))
			},
			change: func(c *Config) {
				c.Method, c.Body = "POST", []byte("ping")
				c.Headers = map[string]string{"X-Probe": "1", "Host": "svc.example"}
			},
			want: map[string]int64{"requests": n, "answered": n, "status.200": n},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := Config{URL: tc.url(t), Rate: 100}
			if tc.change != nil {
				tc.change(&cfg)
			}
			fc := clocktesting.NewFakeClock(t0)
			p, err := New(cfg, fc)
			if err != nil {
				t.Fatal(err)
			}
			drive(t, p, fc, n, true, nil)
			m := p.Measure(fc.Now())
			for path, want := range tc.want {
				if got := get(m, path); got != want {
					t.Errorf("%s = %v, want %d", path, got, want)
				}
			}
			if t.Failed() {
				t.Logf("measurements: %v", m)
			}
		})
	}
}

func TestOverloadIsCountedNotSkipped(t *testing.T) {
	release := make(chan struct{})
	target := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	fc := clocktesting.NewFakeClock(t0)
	p, err := New(Config{URL: target, Rate: 100, MaxInFlight: 2, Timeout: time.Minute}, fc)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	go func() {
		// Let the two requests in flight go once all sends are due.
		for p.Measure(fc.Now())["requests"] != int64(8) {
			time.Sleep(time.Millisecond)
		}
		once.Do(func() { close(release) })
	}()
	drive(t, p, fc, 10, false, nil)
	m := p.Measure(fc.Now())
	if get(m, "requests") != int64(10) || get(m, "errorsByClass.overload") != int64(8) || get(m, "status.200") != int64(2) {
		t.Errorf("with 2 requests stuck in flight, 10 sends should be 2 answers and 8 overloads; got %v", m)
	}
	if tl := p.Timeline(); len(tl) != 1 || tl[0].Sent != 2 || tl[0].Errors["overload"] != 8 {
		t.Errorf("timeline %+v, want one second with 2 sent and 8 overloads", tl)
	}
}

func TestWindowsSplitByScheduledTime(t *testing.T) {
	var failing atomic.Bool
	target := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(503)
		}
	}))
	fc := clocktesting.NewFakeClock(t0)
	// Sends are at t0, t0+100ms, ... t0+900ms. The first window starts
	// after the first send, which still belongs to it.
	windows := []Window{{"baseline", t0.Add(50 * time.Millisecond)}, {"fault", t0.Add(300 * time.Millisecond)}, {"recovery", t0.Add(700 * time.Millisecond)}}
	p, err := New(Config{URL: target, Rate: 10, Windows: windows}, fc)
	if err != nil {
		t.Fatal(err)
	}
	drive(t, p, fc, 10, true, func(i int) { failing.Store(i >= 3 && i < 7) })
	m := p.Measure(fc.Now())
	want := map[string]any{
		"requests": int64(10), "errors": int64(4), "errorRatio": 0.4,
		"baseline.requests": int64(3), "baseline.errorRatio": 0.0, "baseline.status.200": int64(3),
		"fault.requests": int64(4), "fault.errorRatio": 1.0, "fault.status.503": int64(4), "fault.errorsByClass.http503": int64(4),
		"recovery.requests": int64(3), "recovery.errors": int64(0),
		"errorRatioOverBaseline": 1.0, "latencyP99OverBaseline": 0.0,
	}
	for path, w := range want {
		if got := get(m, path); got != w {
			t.Errorf("%s = %v (%T), want %v", path, got, got, w)
		}
	}
}

func TestMeasurementsBeforeAnyRequest(t *testing.T) {
	p, err := New(Config{URL: "http://127.0.0.1:1/", Rate: 10}, clocktesting.NewFakeClock(t0))
	if err != nil {
		t.Fatal(err)
	}
	m := p.Measure(t0)
	for _, path := range []string{"requests", "errors", "status.500", "status.502", "status.503", "status.504", "all.requests", "all.status.502"} {
		if get(m, path) != int64(0) {
			t.Errorf("%s = %v, want 0", path, get(m, path))
		}
	}
	for _, c := range classNames {
		if get(m, "errorsByClass."+c) != int64(0) || get(m, "all.errorsByClass."+c) != int64(0) {
			t.Errorf("errorsByClass.%s missing", c)
		}
	}
	for _, path := range []string{"errorRatio", "latency.p50", "latency.p999", "latency.max", "latency.mean", "achievedRate", "sendLagP99"} {
		if get(m, path) != 0.0 {
			t.Errorf("%s = %v, want 0.0", path, get(m, path))
		}
	}
	if _, ok := m["errorRatioOverBaseline"]; ok {
		t.Errorf("errorRatioOverBaseline without baseline and fault windows")
	}
}

func TestObjectivesReadTheMeasurements(t *testing.T) {
	var failing atomic.Bool
	target := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(502)
		}
	}))
	fc := clocktesting.NewFakeClock(t0)
	p, err := New(Config{URL: target, Rate: 10, Windows: []Window{{"baseline", t0}, {"fault", t0.Add(time.Second)}}}, fc)
	if err != nil {
		t.Fatal(err)
	}
	drive(t, p, fc, 20, true, func(i int) { failing.Store(i == 15) })
	judge, err := slo.New([]slo.Objective{
		{Name: "no 502", Expr: `traffic.status["502"] == 0 && traffic.errorRatio <= 0.001`},
		{Name: "no 503", Expr: `traffic.status["503"] == 0 && traffic.errorsByClass.timeout == 0`},
		{Name: "fault errors", Expr: `traffic.fault.errorRatio <= 0.1 && traffic.baseline.latency.p99 < 1.0`},
		{Name: "over baseline", Expr: `traffic.errorRatioOverBaseline < 0.2 && traffic.latencyP99OverBaseline < 0.5`},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := judge.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []slo.Verdict{slo.Failed, slo.Passed, slo.Passed, slo.Passed}
	for i, r := range judge.Evaluate(slo.Measurements{"traffic": p.Measure(fc.Now())}, false) {
		if r.Verdict != want[i] {
			t.Errorf("%s: %s (%s), want %s", r.Name, r.Verdict, r.Message, want[i])
		}
	}
}

func TestTimelineIsPerSecondOfScheduledTime(t *testing.T) {
	target := serve(t, cycle(200, 200, 200, 200, 502))
	fc := clocktesting.NewFakeClock(t0)
	// A 1s timeout retires a second's histogram 4 seconds after it.
	p, err := New(Config{URL: target, Rate: 5, Timeout: time.Second}, fc)
	if err != nil {
		t.Fatal(err)
	}
	var kept int
	drive(t, p, fc, 5*12, true, func(int) {
		p.mu.Lock()
		defer p.mu.Unlock()
		n := 0
		for _, s := range p.stats.seconds {
			if s.hist != nil {
				n++
			}
		}
		kept = max(kept, n)
	})
	if kept > p.stats.horizon+1 {
		t.Errorf("%d seconds kept their histograms at once; want at most %d", kept, p.stats.horizon+1)
	}
	tl := p.Timeline()
	if len(tl) != 12 {
		t.Fatalf("%d seconds, want 12", len(tl))
	}
	for k, s := range tl {
		if !s.Start.Equal(t0.Add(time.Duration(k)*time.Second)) || s.Sent != 5 || s.Status[200] != 4 || s.Status[502] != 1 || s.Errors["http502"] != 1 || len(s.Errors) != 1 {
			t.Errorf("second %d: %+v, want 5 sent, 4×200 and 1×502 at %s", k, s, t0.Add(time.Duration(k)*time.Second))
		}
		if s.LatencyP50 <= 0 || s.LatencyP99 < s.LatencyP50 {
			t.Errorf("second %d: latency p50 %v p99 %v", k, s.LatencyP50, s.LatencyP99)
		}
	}
}

// TestOpenLoop runs on the real clock: a server that holds every request
// 500 ms must not slow the sends down. It asserts counts, not timings.
func TestOpenLoop(t *testing.T) {
	var now, most atomic.Int64
	target := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := now.Add(1)
		defer now.Add(-1)
		for m := most.Load(); c > m && !most.CompareAndSwap(m, c); m = most.Load() {
		}
		time.Sleep(500 * time.Millisecond)
	}))
	p, err := New(Config{URL: target, Rate: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	m := p.Measure(time.Now())
	requests := m["requests"].(int64)
	// 100 a second for 1s is 100 sends; a closed loop would have made 2.
	if requests < 90 || requests > 101 || m["answered"] != requests {
		t.Errorf("%d requests, %v answered; want about 100, all answered", requests, m["answered"])
	}
	if most.Load() < 30 {
		t.Errorf("at most %d requests were at the server at once; open loop at 100/s against 500 ms should have about 50", most.Load())
	}
	if p50 := get(m, "latency.p50").(float64); p50 < 0.5 {
		t.Errorf("latency p50 %vs, but the server holds each request 500 ms", p50)
	}
	if lag := p.SendLag(); lag.Count != requests {
		t.Errorf("send lag of %d requests, want %d", lag.Count, requests)
	}
	sent := 0
	for _, s := range p.Timeline() {
		sent += s.Sent
	}
	if int64(sent) != requests {
		t.Errorf("the timeline has %d sent, want %d", sent, requests)
	}
	if err := p.Run(context.Background()); err == nil {
		t.Errorf("a second Run should fail")
	}
}

func TestClassify(t *testing.T) {
	dial := func(err error) error {
		return &url.Error{Op: "Get", URL: "http://x/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}}
	}
	cases := map[string]struct {
		err  error
		want string
	}{
		"ECONNREFUSED is refused":                          {dial(syscall.ECONNREFUSED), "refused"},
		"ECONNRESET is a reset":                            {dial(syscall.ECONNRESET), "reset"},
		"EPIPE is a reset":                                 {dial(syscall.EPIPE), "reset"},
		"EOF before the answer is a reset":                 {&url.Error{Err: io.EOF}, "reset"},
		"a broken HTTP/1 connection is a reset":            {&url.Error{Err: fmt.Errorf("net/http: HTTP/1.x transport connection broken: %w", io.ErrUnexpectedEOF)}, "reset"},
		"a server closing an idle connection is a reset":   {&url.Error{Err: errors.New("http: server closed idle connection")}, "reset"},
		"the request's deadline is a timeout":              {&url.Error{Err: context.DeadlineExceeded}, "timeout"},
		"ETIMEDOUT is a timeout":                           {dial(syscall.ETIMEDOUT), "timeout"},
		"an I/O deadline is a timeout":                     {&url.Error{Err: fmt.Errorf("read: %w", os.ErrDeadlineExceeded)}, "timeout"},
		"no route to host is other":                        {dial(syscall.EHOSTUNREACH), "other"},
		"a DNS failure is other, even when it timed out":   {&url.Error{Err: &net.OpError{Err: &net.DNSError{Err: "timeout", IsTimeout: true}}}, "other"},
		"a malformed answer is other":                      {&url.Error{Err: errors.New(`malformed HTTP response "xyz"`)}, "other"},
		"a request not sent for overload is overload":      {errOverload, "overload"},
		"a network unreachable is other, not a connection": {dial(syscall.ENETUNREACH), "other"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := classNames[classify(tc.err)]; got != tc.want {
				t.Errorf("classify(%v) = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
}

func TestConnectionsAreKeptAliveOrNewPerRequest(t *testing.T) {
	for name, tc := range map[string]struct {
		newConns  bool
		wantConns func(n int) bool
	}{
		"kept alive, sequential requests share one connection":      {false, func(n int) bool { return n == 1 }},
		"new per request, each request has a connection of its own": {true, func(n int) bool { return n == 10 }},
	} {
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			conns := map[string]bool{}
			target := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				conns[r.RemoteAddr] = true
				mu.Unlock()
			}))
			fc := clocktesting.NewFakeClock(t0)
			p, err := New(Config{URL: target, Rate: 100, NewConnections: tc.newConns}, fc)
			if err != nil {
				t.Fatal(err)
			}
			drive(t, p, fc, 10, true, nil)
			if m := p.Measure(fc.Now()); get(m, "status.200") != int64(10) {
				t.Fatalf("want 10 answers, got %v", m)
			}
			mu.Lock()
			defer mu.Unlock()
			if !tc.wantConns(len(conns)) {
				t.Errorf("%d connections for 10 requests", len(conns))
			}
		})
	}
}
