// Command demo-app is the HTTP service that faultline's sandbox and
// scenarios run as a workload. Its shutdown mode decides how it behaves in
// a rolling update:
//
//   - fragile: exits at once on SIGTERM, so requests routed to it while the
//     endpoints and proxies catch up fail (refused, reset, or 502 behind a
//     proxy);
//   - graceful: on SIGTERM it fails its readiness check, keeps serving for
//     the drain period while traffic moves away, then shuts down cleanly.
//
// --leader-elect makes it a leader-elected controller (see leader.go).
//
// --hold-memory makes it a workload with a working set: it keeps that much
// memory resident, as a cache would, so that the kubelet's eviction
// ranking (usage above requests) has something to rank.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/api/resource"
)

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if v := os.Getenv(key); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			log.Fatalf("%s %q: must be a duration such as 10s", key, v)
		}
		return d
	}
	return def
}

func main() {
	addr := flag.String("listen", envOr("DEMO_LISTEN", ":8080"), "address to serve on (env DEMO_LISTEN)")
	mode := flag.String("shutdown", envOr("DEMO_SHUTDOWN", "graceful"), "shutdown mode on SIGTERM: fragile (exit at once) or graceful (drain, then exit) (env DEMO_SHUTDOWN)")
	drainStr := flag.String("drain", envOr("DEMO_DRAIN", "10s"), "graceful mode: how long to keep serving after SIGTERM (env DEMO_DRAIN)")
	holdStr := flag.String("hold-memory", envOr("DEMO_HOLD_MEMORY", "0"), "bytes to keep resident, such as 64Mi (env DEMO_HOLD_MEMORY)")
	var lc leaderConfig
	flag.StringVar(&lc.lease, "leader-elect", envOr("DEMO_LEADER_ELECT", ""), "hold this Lease in the pod's namespace as a leader-elected controller does, and exit when a renewal misses its deadline; not ready while not leading (env DEMO_LEADER_ELECT)")
	flag.DurationVar(&lc.leaseDuration, "lease-duration", envDuration("DEMO_LEASE_DURATION", 15*time.Second), "leader election: how long a lease lasts unrenewed (env DEMO_LEASE_DURATION)")
	flag.DurationVar(&lc.renewDeadline, "renew-deadline", envDuration("DEMO_RENEW_DEADLINE", 10*time.Second), "leader election: how long the leader keeps retrying a renewal before it gives up (env DEMO_RENEW_DEADLINE)")
	flag.DurationVar(&lc.retryPeriod, "retry-period", envDuration("DEMO_RETRY_PERIOD", 2*time.Second), "leader election: time between tries (env DEMO_RETRY_PERIOD)")
	signalLog := flag.String("signal-log", envOr("DEMO_SIGNAL_LOG", ""), "file to append each received signal to, so tests can see what reached the main process (env DEMO_SIGNAL_LOG)")
	flag.Parse()
	drain, err := time.ParseDuration(*drainStr)
	if err != nil || drain < 0 {
		log.Fatalf("--drain %q: must be a non-negative duration such as 10s", *drainStr)
	}
	if *mode != "fragile" && *mode != "graceful" {
		log.Fatalf("--shutdown %q: must be fragile or graceful", *mode)
	}
	hold, err := resource.ParseQuantity(*holdStr)
	if err != nil || hold.Sign() < 0 {
		log.Fatalf("--hold-memory %q: must be a quantity of bytes such as 64Mi", *holdStr)
	}
	if lc.lease != "" {
		if err := lc.validate(); err != nil {
			log.Fatal(err)
		}
	}
	held := holdMemory(hold.Value())

	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "demo_app_requests_total",
		Help: "HTTP requests served, by path and status code.",
	}, []string{"path", "code"})
	reg.MustRegister(requests, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var draining, leading atomic.Bool
	leader := prometheus.NewGauge(prometheus.GaugeOpts{Name: "demo_app_leader", Help: "1 while this pod holds its leader election's lease."})
	reg.MustRegister(leader)
	// Cancelled on the first SIGTERM, so that the lease is released
	// (ReleaseOnCancel) for the next pod rather than left to expire.
	electionCtx, stopElection := context.WithCancel(context.Background())
	defer stopElection()
	if lc.lease != "" {
		err := lc.lead(electionCtx, func(on bool) {
			leading.Store(on)
			leader.Set(map[bool]float64{true: 1}[on])
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	host, _ := os.Hostname()
	count := func(path string, code int) { requests.WithLabelValues(path, strconv.Itoa(code)).Inc() }

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		count("/", http.StatusOK)
		fmt.Fprintf(w, "hello from %s (%s)\n", host, *mode)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		count("/healthz", http.StatusOK)
		fmt.Fprintln(w, "ok")
	})
	// readyz fails while draining so that the endpoints drop this pod.
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			count("/readyz", http.StatusServiceUnavailable)
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		if lc.lease != "" && !leading.Load() {
			count("/readyz", http.StatusServiceUnavailable)
			http.Error(w, "not leading", http.StatusServiceUnavailable)
			return
		}
		count("/readyz", http.StatusOK)
		fmt.Fprintln(w, "ready")
	})
	// /status/CODE answers with that code, to exercise error accounting.
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.PathValue("code"))
		if err != nil || code < 100 || code > 599 {
			code = http.StatusBadRequest
		}
		count("/status", code)
		w.WriteHeader(code)
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	// ListenAndServe returns as soon as Shutdown starts; main must wait for
	// the requests in flight to finish, or graceful would cut them.
	stopped := make(chan struct{})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	// Every signal is logged, duplicates too: tests count what reached the
	// main process.
	go func() {
		first := true
		for s := range sigs {
			log.Printf("received %s (shutdown mode %s)", s, *mode)
			if *signalLog != "" {
				if f, err := os.OpenFile(*signalLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
					fmt.Fprintf(f, "%s pid=%d\n", s, os.Getpid())
					f.Close()
				}
			}
			if !first {
				continue
			}
			first = false
			stopElection()
			if *mode == "fragile" {
				os.Exit(0)
			}
			go func() {
				draining.Store(true)
				// Connections kept alive through the Service stick to this
				// pod after the endpoints drop it: close each after its
				// next answer, so clients reconnect to a pod that stays.
				srv.SetKeepAlivesEnabled(false)
				time.Sleep(drain)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(ctx)
				close(stopped)
			}()
		}
	}()
	log.Printf("demo-app listening on %s, shutdown mode %s, drain %s, holding %d bytes", *addr, *mode, drain, len(held))
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	<-stopped
	log.Printf("drained and stopped")
	runtime.KeepAlive(held)
}

// holdMemory allocates n bytes and writes every page, so that they are
// resident and in the container's working set.
func holdMemory(n int64) []byte {
	b := make([]byte, n)
	for i := 0; i < len(b); i += os.Getpagesize() {
		b[i] = 1
	}
	return b
}
