package traffic

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkProber sends b.N requests at 5,000 a second to an in-process
// server and reports the prober's send lag and the CPU it and the server
// used per request (allocations include the server's too). For figures
// about the prober alone, with the server in its own process and wrk and
// hey for scale, run cmd/trafficbench.
func BenchmarkProber(b *testing.B) {
	const rate = 5000
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) }))
	defer s.Close()
	p, err := New(Config{URL: s.URL, Rate: rate}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(float64(b.N)/rate*float64(time.Second)))
	defer cancel()
	b.ReportAllocs()
	cpu := cpuTime()
	b.ResetTimer()
	if err := p.Run(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	m := p.Measure(time.Now())
	n := float64(m["requests"].(int64))
	if errs := m["errors"].(int64); errs > 0 {
		b.Errorf("%d errors: %v", errs, m["errorsByClass"])
	}
	b.ReportMetric(m["achievedRate"].(float64), "req/s")
	b.ReportMetric(float64(p.SendLag().P99.Microseconds()), "lag-p99-µs")
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/n, "cpu-µs/req")
}

func cpuTime() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
