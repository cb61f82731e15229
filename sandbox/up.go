package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Progress prints a line with the time elapsed since the start of a step.
type Progress struct {
	W     io.Writer
	start time.Time
}

// NewProgress starts the clock.
func NewProgress(w io.Writer) *Progress { return &Progress{W: w, start: time.Now()} }

// Printf writes one progress line.
func (p *Progress) Printf(format string, args ...any) {
	if p == nil || p.W == nil {
		return
	}
	fmt.Fprintf(p.W, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

// upComponent records the process running `up` until the sandbox is ready.
const upComponent = "sandbox-up"

// ErrAlreadyRunning is returned by Up when the sandbox exists.
var ErrAlreadyRunning = errors.New("sandbox already exists")

// lockRoot serialises the creation and removal of sandboxes on a machine.
func lockRoot(root string) (func(), error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(root, ".lock")
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, err
		}
		// The last `down` removes the lock file while holding it; a waiter
		// that then gets the lock of the removed file must start again.
		var held, now syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &held) == nil && syscall.Stat(path, &now) == nil && held.Ino == now.Ino {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		f.Close()
		if err := os.MkdirAll(root, 0o755); err != nil {
			return nil, err
		}
	}
}

// allStates reads every sandbox's state under root.
func allStates(root string) []*State {
	entries, _ := os.ReadDir(root)
	var out []*State
	for _, e := range entries {
		if s, err := LoadState(filepath.Join(root, e.Name())); err == nil {
			out = append(out, s)
		}
	}
	return out
}

// reserve creates the sandbox's directory and state with a free index.
func reserve(c Config) (*State, error) {
	unlock, err := lockRoot(c.root())
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(c.Dir()); err == nil {
		if st, err := LoadState(c.Dir()); err == nil && st.Ready {
			return nil, fmt.Errorf("%w: sandbox %q is up since %s (kubeconfig %s); use it, or remove it first with `faultline sandbox down --name %s`",
				ErrAlreadyRunning, c.Name, st.Started.Format(time.RFC3339), st.Kubeconfig, c.Name)
		}
		return nil, fmt.Errorf("%w: sandbox %q was left half made by an earlier `up`; remove it first with `faultline sandbox down --name %s`",
			ErrAlreadyRunning, c.Name, c.Name)
	}
	used := map[int]bool{}
	for _, st := range allStates(c.root()) {
		used[st.Index] = true
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, err
	}
	// Of the free indexes, the one released longest ago (never: first):
	// an index just freed still has its addresses in sockets closing and
	// in neighbours' caches, and whoever checks what the last sandbox
	// there left would see the next one's.
	var free []int
	for i := range maxSandboxes {
		if _, err := netlink.LinkByName(NewPlan(i).BridgeName()); err == nil || used[i] || rangeTaken(NewPlan(i).Super, routes) {
			continue
		}
		free = append(free, i)
	}
	index := releasedLongestAgo(free, readReleased(c.root()))
	if index < 0 {
		return nil, fmt.Errorf("no free sandbox slot: %d sandboxes are up; remove one with `faultline sandbox down --name NAME`", maxSandboxes)
	}
	if err := os.MkdirAll(c.Dir(), 0o755); err != nil {
		return nil, err
	}
	s := &State{path: statePath(c.Dir()), Name: c.Name, Index: index, Config: c, Started: time.Now(), Components: map[string]Component{
		// A `down` while this `up` still runs stops it first, or it would
		// go on making what down removes.
		upComponent: {Name: upComponent, PID: os.Getpid(), Start: procStart(os.Getpid())},
	}}
	return s, s.save()
}

// Up brings a sandbox up and waits until every node is Ready. When a step
// fails, it removes what it made (unless keepOnFailure) and returns an
// error that names the component and shows its last log lines.
func Up(ctx context.Context, c Config, progress *Progress, keepOnFailure bool) (*State, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	// Root first: a build of the tools would take minutes before the
	// refusal.
	if os.Geteuid() != 0 {
		return nil, errNotRoot
	}
	if err := ensureTools(ctx, c, progress); err != nil {
		return nil, err
	}
	if err := Preflight(c); err != nil {
		return nil, err
	}
	s, err := reserve(c)
	if err != nil {
		return nil, err
	}
	if err := s.up(ctx, progress); err != nil {
		if !keepOnFailure {
			progress.Printf("bring-up failed; removing what it made (keep it with --retain)")
			if derr := Down(c, nil); derr != nil {
				err = fmt.Errorf("%w (and the cleanup failed: %v)", err, derr)
			}
		}
		return nil, err
	}
	return s, nil
}

func (s *State) up(ctx context.Context, progress *Progress) error {
	c := s.Config
	p := NewPlan(s.Index)
	progress.Printf("sandbox %q: addresses %s on bridge %s, %d shared kwok, %d isolated kwok, %d real node(s), timings %s",
		c.Name, p.Super, p.BridgeName(), c.SharedKwokNodes, c.IsolatedKwokNodes, c.RealNodes, c.Timings)
	var images map[string]string
	if c.RealNodes > 0 {
		if err := saveHostState(c.root()); err != nil {
			return err
		}
		var err error
		if images, err = s.imageTarballs(); err != nil {
			return err
		}
	}
	if err := s.setupBridge(p); err != nil {
		return err
	}
	cp, err := s.startControlPlane(ctx, p, progress.Printf)
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(c.Dir(), "kubeconfig")
	if err := cp.pki.writeKubeconfig(kubeconfig, cp.server, cp.ids.admin); err != nil {
		return err
	}
	if err := s.update(func(s *State) { s.Kubeconfig, s.Server = kubeconfig, cp.server }); err != nil {
		return err
	}
	cs, err := clientFor(kubeconfig)
	if err != nil {
		return err
	}
	if err := s.startKwok(ctx, p, cp, cs); err != nil {
		return err
	}
	if n := c.SharedKwokNodes + c.IsolatedKwokNodes; n > 0 {
		progress.Printf("kwok: %d shared and %d isolated node(s) created", c.SharedKwokNodes, c.IsolatedKwokNodes)
	}
	for i := range c.RealNodes {
		if err := s.startRealNode(ctx, p, cp, i, images); err != nil {
			return err
		}
		if err := s.update(func(s *State) {
			s.Nodes = append(s.Nodes, NodeInfo{Name: RealNodeName(i), Kind: NodeReal, Addr: p.RealNodeAddr(i).String(), Netns: p.NetnsName(RealNodeName(i))})
		}); err != nil {
			return err
		}
		progress.Printf("real node %s: containerd, kubelet and kube-proxy started at %s, pods %s", RealNodeName(i), p.RealNodeAddr(i), p.RealNodePodCIDR(i))
	}
	if c.Prometheus {
		url, err := s.startPrometheus(ctx, p, cp, s.Components["etcd"].Ports[2])
		if err != nil {
			return err
		}
		if err := s.update(func(s *State) { s.PrometheusURL = url }); err != nil {
			return err
		}
		progress.Printf("prometheus ready at %s", url)
	}
	if c.Ingress {
		url, err := s.startIngress(ctx, p)
		if err != nil {
			return err
		}
		if err := s.update(func(s *State) { s.IngressURL = url }); err != nil {
			return err
		}
		progress.Printf("ingress (nginx) ready at %s: annotate a Service with %s: /PATH", url, IngressPathAnnotation)
	}
	if err := s.waitNodesReady(ctx, cs, 3*time.Minute, progress); err != nil {
		return err
	}
	if c.Faultline {
		if err := s.startFaultline(ctx, cs); err != nil {
			return err
		}
		progress.Printf("faultline: CRDs installed, controller and %d agent(s) running", c.IsolatedKwokNodes+c.RealNodes)
	}
	if c.Install {
		if err := s.installFaultline(ctx, cs, progress); err != nil {
			return err
		}
	}
	if c.ChaosMesh {
		if err := s.startChaosMesh(ctx, cs, progress); err != nil {
			return err
		}
	}
	return s.update(func(s *State) { s.Ready = true; delete(s.Components, upComponent) })
}

func clientFor(kubeconfig string) (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 200, 400
	return kubernetes.NewForConfig(cfg)
}

// NodeReady reports whether a node's Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (s *State) waitNodesReady(ctx context.Context, cs kubernetes.Interface, timeout time.Duration, progress *Progress) error {
	want := map[string]bool{}
	for _, n := range s.Nodes {
		want[n.Name] = true
	}
	deadline := time.Now().Add(timeout)
	lastReport := time.Time{}
	for {
		list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		var notReady []string
		if err == nil {
			ready := map[string]bool{}
			for i := range list.Items {
				if NodeReady(&list.Items[i]) {
					ready[list.Items[i].Name] = true
				}
			}
			for n := range want {
				if !ready[n] {
					notReady = append(notReady, n)
				}
			}
			sort.Strings(notReady)
			if len(notReady) == 0 {
				progress.Printf("all %d node(s) Ready", len(want))
				return nil
			}
		}
		if err := s.checkAlive(); err != nil {
			return err
		}
		if time.Since(lastReport) > 5*time.Second {
			progress.Printf("waiting for nodes: %d/%d Ready", len(want)-len(notReady), len(want))
			lastReport = time.Now()
		}
		if time.Now().After(deadline) {
			err := fmt.Errorf("nodes not Ready after %s: %s", timeout, strings.Join(firstN(notReady, 10), ", "))
			for _, n := range notReady {
				for _, comp := range []string{"kubelet-" + n, "kwok-" + n} {
					if c, ok := s.Components[comp]; ok {
						return &ComponentError{Component: c.Name, Log: c.Log, Tail: tail(c.Log, 15), Err: err}
					}
				}
			}
			if c, ok := s.Components["kwok"]; ok {
				return &ComponentError{Component: c.Name, Log: c.Log, Tail: tail(c.Log, 15), Err: err}
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// checkAlive fails with the log of the first recorded component that died.
func (s *State) checkAlive() error {
	for _, c := range s.Components {
		if c.Name == upComponent {
			continue
		}
		if !alive(c.PID, c.Start) || zombie(c.PID) {
			return &ComponentError{Component: c.Name, Log: c.Log, Tail: tail(c.Log, 15), Err: errors.New("exited")}
		}
	}
	return nil
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(slices.Clone(s[:n]), fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}

// Real nodes change the machine outside their directories: the kubelet
// sets a few sysctls and makes /var/lib/kubelet/device-plugins and
// /var/log/containers whatever its root dir, and containerd's CNI library
// caches results in /var/lib/cni. What the machine looked like before the
// first sandbox with real nodes is kept here, and put back when the last one
// goes down.
type hostState struct {
	Sysctls map[string]string `json:"sysctls"`
	// Absent paths did not exist before; they are removed at the end.
	Absent []string `json:"absent"`
}

var hostPaths = []string{"/var/lib/kubelet", "/var/log/containers", "/var/lib/cni"}

func hostStatePath(root string) string { return filepath.Join(root, "host-state.json") }

func saveHostState(root string) error {
	p := hostStatePath(root)
	if _, err := os.Stat(p); err == nil {
		return nil // an earlier sandbox saved the machine's original state
	}
	hs := hostState{Sysctls: readSysctls()}
	for _, hp := range hostPaths {
		if _, err := os.Lstat(hp); os.IsNotExist(err) {
			hs.Absent = append(hs.Absent, hp)
		}
	}
	b, err := json.Marshal(hs)
	if err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o600)
}

func restoreHostState(root string) error {
	p := hostStatePath(root)
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var hs hostState
	if err := json.Unmarshal(b, &hs); err != nil {
		return err
	}
	var errs []error
	for k, v := range hs.Sysctls {
		if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", k, v, err))
		}
	}
	for _, hp := range hs.Absent {
		if err := os.RemoveAll(hp); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return os.Remove(p)
}

// rangeTaken reports whether a host route (other than a default route)
// overlaps the range: a more specific route of someone else's would win
// over the sandbox's and could carry sandbox traffic off the machine.
func rangeTaken(super netip.Prefix, routes []netlink.Route) bool {
	for _, r := range routes {
		if r.Dst == nil {
			continue // a default route
		}
		ones, _ := r.Dst.Mask.Size()
		a, ok := netip.AddrFromSlice(r.Dst.IP.To4())
		if ok && ones > 0 && netip.PrefixFrom(a, ones).Overlaps(super) {
			return true
		}
	}
	return false
}
