package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// IngressSyncOptions configure SyncIngress.
type IngressSyncOptions struct {
	Kubeconfig string
	// SandboxDir holds the state (which names nginx's master process) and
	// the ingress directory.
	SandboxDir string
	// Ingress is the HOST:PORT nginx listens on.
	Ingress string
	// Listen is where /readyz is served.
	Listen string
	// Nginx is the nginx binary, for `nginx -t`.
	Nginx string
}

// ingressDebounce gathers a burst of changes (a rollout moves many
// endpoints) into one reload.
const ingressDebounce = 100 * time.Millisecond

// SyncIngress keeps the sandbox ingress's nginx.conf in step with the
// Services annotated IngressPathAnnotation and their EndpointSlices: on a
// change it renders the configuration, has `nginx -t` check it, puts it in
// place atomically and sends SIGHUP to the nginx master that the sandbox
// started, then waits until nginx serves it. It runs as a sandbox component
// and serves /readyz: 200 once the configuration of the latest change is
// live, 503 with the reason otherwise.
func SyncIngress(ctx context.Context, o IngressSyncOptions) error {
	cs, err := clientFor(o.Kubeconfig)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(cs, 10*time.Minute)
	services := factory.Core().V1().Services()
	endpoints := factory.Discovery().V1().EndpointSlices()
	work := make(chan struct{}, 1)
	poke := func() {
		select {
		case work <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	if _, err := services.Informer().AddEventHandler(handler); err != nil {
		return err
	}
	if _, err := endpoints.Informer().AddEventHandler(handler); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("ingress-sync: the %v informer did not sync", typ)
		}
	}

	s := &ingressSyncer{o: o, l: newIngressLayout(o.SandboxDir), client: &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", s.readyz)
	srv := &http.Server{Addr: o.Listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	defer srv.Close()

	poke()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-served:
			return err
		case <-work:
		}
		// Wait for a quiet moment, but no more than a second.
		quiet, most := time.NewTimer(ingressDebounce), time.NewTimer(time.Second)
	gather:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-work:
				quiet.Reset(ingressDebounce)
			case <-quiet.C:
				break gather
			case <-most.C:
				break gather
			}
		}
		quiet.Stop()
		most.Stop()
		svcs, err1 := services.Lister().List(labels.Everything())
		sls, err2 := endpoints.Lister().List(labels.Everything())
		err := errors.Join(err1, err2)
		if err == nil {
			err = s.apply(ingressRoutes(svcs, sls))
		}
		s.setErr(err)
		if err != nil {
			log.Printf("ingress-sync: %v (trying again in 2s)", err)
			time.AfterFunc(2*time.Second, poke)
		}
	}
}

type ingressSyncer struct {
	o      IngressSyncOptions
	l      ingressLayout
	client *http.Client

	mu       sync.Mutex
	err      error
	live     string // hash of the configuration nginx serves
	routes   int
	problems []string
}

func (s *ingressSyncer) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *ingressSyncer) readyz(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.err != nil:
		http.Error(w, s.err.Error(), http.StatusServiceUnavailable)
	case s.live == "":
		http.Error(w, "not synced yet", http.StatusServiceUnavailable)
	default:
		fmt.Fprintf(w, "config %s live: %d route(s)\n", s.live, s.routes)
		for _, p := range s.problems {
			fmt.Fprintf(w, "not routed: %s\n", p)
		}
	}
}

// apply makes nginx serve the routes: it does nothing when nginx already
// serves that configuration.
func (s *ingressSyncer) apply(routes []ingressRoute, problems []string) error {
	s.mu.Lock()
	changedProblems := !slices.Equal(problems, s.problems)
	s.problems = problems
	s.mu.Unlock()
	if changedProblems {
		for _, p := range problems {
			log.Printf("ingress-sync: not routed: %s", p)
		}
	}
	conf, hash, err := renderIngressConf(ingressConfig{Dir: s.l.dir, Listen: s.o.Ingress, Routes: routes})
	if err != nil {
		return err
	}
	current, _ := os.ReadFile(s.l.conf())
	if bytes.Equal(current, conf) {
		if live, _ := s.liveHash(); live == hash {
			if s.setLive(hash, len(routes)) {
				log.Printf("ingress-sync: configuration %s live: %s", hash, describeRoutes(routes))
			}
			return nil
		}
	} else {
		if err := writeFileAtomic(s.l.next(), conf); err != nil {
			return err
		}
		if err := validateNginxConf(s.o.Nginx, s.l, s.l.next()); err != nil {
			return fmt.Errorf("configuration %s kept out of service: %w", s.l.next(), err)
		}
		if err := os.Rename(s.l.next(), s.l.conf()); err != nil {
			return err
		}
	}
	if err := s.reload(); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		live, err := s.liveHash()
		if live == hash {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx does not serve configuration %s 10s after SIGHUP (serving %q, %v); see the ingress component's log", hash, live, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.setLive(hash, len(routes))
	log.Printf("ingress-sync: configuration %s live: %s", hash, describeRoutes(routes))
	return nil
}

// setLive records the configuration nginx serves and reports whether it is
// another than before.
func (s *ingressSyncer) setLive(hash string, routes int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := s.live != hash
	s.live, s.routes = hash, routes
	return changed
}

// liveHash asks nginx which configuration its workers run.
func (s *ingressSyncer) liveHash() (string, error) {
	resp, err := s.client.Get("http://" + s.o.Ingress + "/healthz")
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	return resp.Header.Get("X-Faultline-Ingress-Config"), nil
}

// reload sends SIGHUP to the nginx master that the sandbox started, as its
// state records it (PID and start time, never a process found by name); the
// pid file nginx wrote must agree.
func (s *ingressSyncer) reload() error {
	st, err := LoadState(s.o.SandboxDir)
	if err != nil {
		return err
	}
	c, ok := st.Components[IngressComponent]
	if !ok {
		return fmt.Errorf("the sandbox's state records no %s component", IngressComponent)
	}
	if !alive(c.PID, c.Start) || zombie(c.PID) {
		return fmt.Errorf("nginx (component %s, pid %d) is not running; see %s", IngressComponent, c.PID, c.Log)
	}
	if b, err := os.ReadFile(s.l.pidFile()); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid != c.PID {
			return fmt.Errorf("nginx's pid file %s names pid %d, the sandbox's state %d: not signalling either", s.l.pidFile(), pid, c.PID)
		}
	}
	return syscall.Kill(c.PID, syscall.SIGHUP)
}

func describeRoutes(routes []ingressRoute) string {
	if len(routes) == 0 {
		return "no routes"
	}
	var parts []string
	for _, r := range routes {
		parts = append(parts, fmt.Sprintf("%s -> %s (%d ready)", r.Path, r.Service, len(r.Servers)))
	}
	return strings.Join(parts, ", ")
}
