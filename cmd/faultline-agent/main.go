// Command faultline-agent carries out its node's FaultAssignment. It
// enforces every fault's deadline by its own clock from its on-node ledger,
// so a node cut off from the API server still recovers on time, and a
// restarted agent recovers or resumes whatever its predecessor left.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/injectors"
	"faultline.dev/faultline/injectors/agent"
	"faultline.dev/faultline/injectors/disklatency"
	"faultline.dev/faultline/injectors/ledger"
	"faultline.dev/faultline/injectors/memstress"
	"faultline.dev/faultline/injectors/netloss"
	"faultline.dev/faultline/injectors/signal"
)

// factories are the fault families this agent carries, by fault type.
var factories = map[string]injectors.Factory{
	string(v1alpha1.FaultNetworkLoss):    netloss.New,
	string(v1alpha1.FaultRollout):        signal.New,
	string(v1alpha1.FaultDiskLatency):    disklatency.New,
	string(v1alpha1.FaultMemoryPressure): memstress.New,
}

// nodeEnv is what resolving a fault needs to know of this node.
type nodeEnv struct {
	// ledgerDir holds the ledger and the faults' own state (a stressor's).
	ledgerDir string
	// podsCgroup is the kubelet's pod cgroup, where node memory pressure
	// is made so that the kubelet counts it.
	podsCgroup string
}

func main() {
	// The memory stressor is this binary, so that nothing else needs
	// installing on the node.
	if len(os.Args) > 1 && os.Args[1] == memstress.StressorCommand {
		os.Exit(memstress.StressorMain(os.Args[2:]))
	}
	var node, ledgerDir, metricsAddr, podsCgroup string
	var identity string
	flag.StringVar(&node, "node", os.Getenv("NODE_NAME"), "the node this agent serves (env NODE_NAME)")
	flag.StringVar(&ledgerDir, "ledger-dir", "/var/lib/faultline/agent", "the on-node ledger's directory; it must survive the agent")
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "where Prometheus metrics are served (0 disables)")
	flag.StringVar(&podsCgroup, "pods-cgroup", "/kubepods", "the kubelet's pod cgroup (its cgroup root plus kubepods): node memory pressure is made under it, where the kubelet counts it;\n"+
		"auto finds it from this agent's own cgroup when it runs in a pod (the chart's DaemonSet)")
	flag.StringVar(&identity, "node-identity", "", "the namespace of the nodes' agent identities: act as this node's own ServiceAccount there (faultline-agent-NODE,\n"+
		"made by the controller), whose token the DaemonSet's shared one may ask for; RBAC then lets this agent read its own\n"+
		"node's FaultAssignment and no other. Empty: act with the credentials given (the sandbox's agent processes)")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	logger := ctrl.Log.WithName("agent").WithValues("node", node)
	if node == "" {
		fmt.Fprintln(os.Stderr, "--node is required (or NODE_NAME)")
		os.Exit(2)
	}
	if podsCgroup == "auto" {
		p, err := memstress.PodsCgroupOf("/proc/self/cgroup")
		if err != nil {
			fmt.Fprintln(os.Stderr, "--pods-cgroup=auto:", err)
			os.Exit(2)
		}
		podsCgroup = p
		logger.Info("found the kubelet's pod cgroup from this agent's own", "podsCgroup", p)
	}
	l, err := ledger.Open(ledgerDir)
	if err != nil {
		logger.Error(err, "ledger")
		os.Exit(1)
	}
	engine := &agent.Engine{Ledger: l, Clock: clock.RealClock{}, Factories: factories}
	ctx := ctrl.SetupSignalHandler()
	// Tracers live in this process: on SIGTERM they detach before it exits
	// (the kernel would detach them at the exit too, but a held call is
	// released now and the ledger entry stays Injected for the next agent).
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := disklatency.Shutdown(sctx); err != nil {
			logger.Error(err, "detaching tracers")
		}
	}()

	if l.Corrupt != "" {
		logger.Error(nil, "the ledger was corrupt and was moved aside", "file", l.Corrupt)
	}
	// Deadlines first, from the ledger alone: nothing below needs the API
	// server for a fault to end on time.
	if err := engine.Resume(ctx); err != nil {
		logger.Error(err, "resume from the ledger")
	}
	// A fault table in this node's namespace that no active ledger entry
	// knows (a lost or corrupt ledger) has no deadline anyone enforces.
	if orphans, err := sweepOrphans(l); err != nil {
		logger.Error(err, "sweep for faults the ledger does not know")
	} else if len(orphans) > 0 {
		logger.Info("removed faults the ledger did not know", "tables", orphans)
	}
	// The same for stressors and their cgroups, found by the state they
	// keep beside the ledger (pid and start time, never a name).
	if swept, err := memstress.Sweep(ctx, ledgerDir, func(id string) bool {
		en, ok := l.Get(id)
		return ok && en.Active()
	}); err != nil {
		logger.Error(err, "sweep for stressors the ledger does not know")
	} else if len(swept) > 0 {
		logger.Info("removed stressors the ledger did not know", "faults", swept)
	}
	poke := make(chan struct{}, 1)
	go engine.RunDeadlines(ctx, poke, func(err error) { logger.Error(err, "deadline") })

	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		logger.Error(err, "scheme")
		os.Exit(1)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		logger.Error(err, "no cluster to talk to")
		os.Exit(1)
	}
	logger.Info("starting faultline-agent", "ledger", filepath.Join(ledgerDir, "ledger.json"))
	// Short timeouts: a cut-off node must not hang its agent's reports.
	cfg.Timeout = 10 * time.Second
	// A restarted agent on a node that is cut off cannot even start its
	// manager (discovery fails): keep trying, while the deadline loop above
	// goes on recovering faults by itself.
	for {
		err := runManager(ctx, cfg, identity, scheme, node, metricsAddr, engine, poke, nodeEnv{ledgerDir: ledgerDir, podsCgroup: podsCgroup})
		if ctx.Err() != nil {
			return
		}
		logger.Error(err, "cannot reach the API server; deadlines are still enforced from the ledger; retrying")
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

func runManager(ctx context.Context, cfg *rest.Config, identity string, scheme *runtime.Scheme, node, metricsAddr string, engine *agent.Engine, poke chan struct{}, env nodeEnv) error {
	if identity != "" {
		var err error
		if cfg, err = nodeIdentity(cfg, identity, node); err != nil {
			return err
		}
	}
	// The node's one FaultAssignment is named after it; RBAC allows a list
	// or watch of it by name only with this field selector.
	mine := fields.OneTermEqualSelector("metadata.name", node)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: metricsAddr},
		Cache:   cache.Options{ByObject: map[client.Object]cache.ByObject{&v1alpha1.FaultAssignment{}: {Field: mine}}},
	})
	if err != nil {
		return err
	}
	r := &reconciler{Client: mgr.GetClient(), node: node, env: env, engine: engine, poke: poke, unresolved: map[string]string{}}
	// Retries build the controller again in the same process.
	opts := controller.Options{SkipNameValidation: ptr.To(true)}
	// One reconcile at start, with or without an assignment: one deleted
	// while this agent was down has no event, and its faults must go now,
	// not at their deadlines.
	start := make(chan event.GenericEvent, 1)
	start <- event.GenericEvent{Object: &v1alpha1.FaultAssignment{ObjectMeta: metav1.ObjectMeta{Name: node}}}
	if err := ctrl.NewControllerManagedBy(mgr).Named("faultassignment").For(&v1alpha1.FaultAssignment{}).
		WatchesRawSource(source.Channel(start, &handler.EnqueueRequestForObject{})).
		WithOptions(opts).Complete(r); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// reconciler turns this node's FaultAssignment into the engine's desired
// faults and reports their state back. Any event reconciles the whole node.
type reconciler struct {
	client.Client
	node   string
	env    nodeEnv
	engine *agent.Engine
	poke   chan struct{}
	// unresolved faults (say, a pod not found on this node) and why
	unresolved map[string]string
}

func (r *reconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	var list v1alpha1.FaultAssignmentList
	// No assignment at all is no fault: the engine recovers what it holds.
	if err := r.List(ctx, &list); err != nil {
		return ctrl.Result{}, err
	}
	var desired []agent.Desired
	var errs []error
	for _, fa := range list.Items {
		if fa.Spec.NodeName != r.node {
			continue
		}
		for _, f := range fa.Spec.Faults {
			d, err := desiredFor(f, time.Now(), r.engine.Ledger.Get, r.env)
			if err != nil {
				// Still assigned: the engine holds it as it is (a passing
				// lookup failure must not recover a fault in place), and the
				// report says why it is not injected.
				errs = append(errs, err)
				r.unresolved[f.ID] = err.Error()
				d.Params = nil
			} else {
				delete(r.unresolved, f.ID)
			}
			desired = append(desired, d)
		}
	}
	// Acknowledge first: a fault that cuts this node from the API server
	// (a partition) leaves no chance to report after injecting.
	reported := r.reportAll(ctx, list.Items)
	next, err := r.engine.Reconcile(ctx, desired)
	if err != nil {
		errs = append(errs, err)
	}
	select {
	case r.poke <- struct{}{}:
	default:
	}
	reported = r.reportAll(ctx, list.Items) && reported
	// Recovered faults are kept a day for reports, then dropped.
	if err := r.engine.Ledger.Forget(time.Now().Add(-24 * time.Hour)); err != nil {
		errs = append(errs, err)
	}
	for _, err := range errs {
		log.FromContext(ctx).Error(err, "reconcile")
	}
	// Requeue soon while a report is owed or a fault is active, so that a
	// recovery made by the deadline loop is reported as soon as the API
	// server answers again; errors are not returned, to avoid backing off.
	res := ctrl.Result{RequeueAfter: 5 * time.Second}
	if !reported || r.active() {
		res.RequeueAfter = time.Second
	}
	if !next.IsZero() {
		if d := time.Until(next); d < res.RequeueAfter {
			res.RequeueAfter = max(d, 10*time.Millisecond)
		}
	}
	return res, nil
}

func (r *reconciler) active() bool {
	for _, en := range r.engine.Ledger.List() {
		if en.Active() {
			return true
		}
	}
	return false
}

func (r *reconciler) reportAll(ctx context.Context, fas []v1alpha1.FaultAssignment) bool {
	ok := true
	for i := range fas {
		if err := r.report(ctx, &fas[i]); err != nil {
			log.FromContext(ctx).Error(err, "report", "assignment", fas[i].Name)
			ok = false
		}
	}
	return ok
}

var stateOf = map[ledger.State]v1alpha1.FaultState{
	ledger.Injecting: v1alpha1.FaultPending, ledger.Injected: v1alpha1.FaultInjected,
	ledger.Recovered: v1alpha1.FaultRecovered, ledger.Failed: v1alpha1.FaultFailed,
}

// report writes the ledger's view of an assignment's faults to its status.
func (r *reconciler) report(ctx context.Context, fa *v1alpha1.FaultAssignment) error {
	st := v1alpha1.FaultAssignmentStatus{ObservedGeneration: fa.Generation}
	for _, f := range fa.Spec.Faults {
		s := v1alpha1.AssignedFaultStatus{ID: f.ID, State: v1alpha1.FaultPending}
		if why, ok := r.unresolved[f.ID]; ok && !f.StartAt.After(time.Now()) {
			s.State, s.Error = v1alpha1.FaultFailed, why
		}
		if en, ok := r.engine.Ledger.Get(f.ID); ok {
			s.State, s.Error = stateOf[en.State], en.Error
			s.Message = r.engine.Effect(ctx, f.ID)
			if en.InjectedAt != nil {
				t := metav1.NewTime(*en.InjectedAt)
				s.InjectedAt = &t
			}
			if en.RecoveredAt != nil {
				t := metav1.NewTime(*en.RecoveredAt)
				s.RecoveredAt = &t
			}
		}
		st.Faults = append(st.Faults, s)
	}
	if equality.Semantic.DeepEqual(st, fa.Status) {
		return nil
	}
	fa.Status = st
	return client.IgnoreNotFound(r.Status().Update(ctx, fa))
}

// desiredFor turns an assigned fault into the engine's terms: the
// injector's parameters, with the pod's network namespace, or the
// container's main process, found on this node. known is the ledger's
// entry for a fault ID.
func desiredFor(f v1alpha1.AssignedFault, now time.Time, known func(id string) (ledger.Entry, bool), env nodeEnv) (agent.Desired, error) {
	d := agent.Desired{ID: f.ID, Type: string(f.Type), StartAt: f.StartAt.Time, Deadline: f.Deadline.Time, Recover: f.Recover}
	switch f.Type {
	case v1alpha1.FaultNetworkLoss:
		nl := f.NetworkLoss
		if nl == nil {
			return d, fmt.Errorf("fault %s: networkLoss missing", f.ID)
		}
		p := netloss.Params{LossPercent: float64(nl.LossPercent), Direction: netloss.Direction(nl.Direction), Peers: nl.Peers, Protocol: netloss.Protocol(nl.Protocol)}
		for _, port := range nl.Ports {
			p.Ports = append(p.Ports, uint16(port))
		}
		if nl.Delay != nil || nl.CorruptPercent > 0 {
			p.Device, p.CorruptPercent = nl.Device, float64(nl.CorruptPercent)
			if p.Device == "" {
				p.Device = "eth0"
			}
			if nl.Delay != nil {
				p.DelayMs = nl.Delay.Milliseconds()
			}
		}
		if f.PodUID != "" {
			ns, err := podNetns(string(f.PodUID))
			if err != nil {
				return d, fmt.Errorf("fault %s on pod %s: %w", f.ID, f.Target, err)
			}
			p.Netns = ns
		}
		b, err := json.Marshal(p)
		if err != nil {
			return d, err
		}
		d.Params = b
	case v1alpha1.FaultRollout:
		s := f.Signal
		if s == nil {
			return d, fmt.Errorf("fault %s: signal missing", f.ID)
		}
		// A signal's target is the process that got, or may have got, the
		// signal. After it the container restarts with a new main process,
		// which is not the target; and a container gone since must not make
		// a fault already in place unresolved.
		return d, resolveOnce(&d, f, now, known, func() (any, error) {
			id, err := signal.BareContainerID(s.ContainerID)
			if err != nil {
				return nil, fmt.Errorf("fault %s: %w", f.ID, err)
			}
			p := signal.Params{ContainerID: id, Signal: s.Signal}
			p.PID, p.StartTime, err = signal.FindMainProcess(id)
			if err != nil {
				return nil, fmt.Errorf("fault %s on pod %s, container %q: %w", f.ID, f.Target, s.Container, err)
			}
			if _, err := p.Validate(); err != nil {
				return nil, fmt.Errorf("fault %s: %w", f.ID, err)
			}
			return p, nil
		})
	case v1alpha1.FaultDiskLatency:
		if f.DiskLatency == nil {
			return d, fmt.Errorf("fault %s: diskLatency missing", f.ID)
		}
		// The traced process (pid and start time): a restarted agent traces
		// that process again, never another that took its name or pid.
		return d, resolveOnce(&d, f, now, known, func() (any, error) {
			p, err := diskLatencyParams(f)
			if err != nil {
				return nil, fmt.Errorf("fault %s on %s: %w", f.ID, f.Target, err)
			}
			return p, nil
		})
	case v1alpha1.FaultMemoryPressure:
		if f.MemoryPressure == nil {
			return d, fmt.Errorf("fault %s: memoryPressure missing", f.ID)
		}
		// The container's cgroup: after the OOM kill the fault forced, the
		// container restarts in a cgroup of its own that it never targets.
		return d, resolveOnce(&d, f, now, known, func() (any, error) {
			p, err := memoryParams(f, env)
			if err != nil {
				return nil, fmt.Errorf("fault %s on %s: %w", f.ID, f.Target, err)
			}
			if _, err := p.Validate(); err != nil {
				return nil, fmt.Errorf("fault %s: %w", f.ID, err)
			}
			return p, nil
		})
	default:
		return d, fmt.Errorf("fault %s: type %q is not known to this agent", f.ID, f.Type)
	}
	return d, nil
}

// memoryParams resolves a memory fault on this node: the memory cgroup of
// the pod's container (from its main process), or the kubelet's pod cgroup
// for the node itself.
func memoryParams(f v1alpha1.AssignedFault, env nodeEnv) (memstress.Params, error) {
	m := f.MemoryPressure
	p := memstress.Params{Mode: memstress.ModeNode, Cgroup: env.podsCgroup, TargetBytes: m.SizeBytes,
		RampBytesPerSecond: m.RampBytesPerSecond, PushPastLimit: m.PushPastLimit, StateDir: env.ledgerDir}
	if f.ContainerID == "" {
		return p, nil
	}
	id, err := signal.BareContainerID(f.ContainerID)
	if err != nil {
		return p, err
	}
	pid, _, err := signal.FindMainProcess(id)
	if err != nil {
		return p, fmt.Errorf("container %s: %w", id, err)
	}
	cg, err := memoryCgroupOf(pid)
	if err != nil {
		return p, fmt.Errorf("container %s: %w", id, err)
	}
	p.Mode, p.Cgroup = memstress.ModeContainer, cg
	return p, nil
}

// memoryCgroupOf reads a process's memory cgroup from /proc/PID/cgroup:
// the memory controller's line on cgroup v1, the unified line on v2.
func memoryCgroupOf(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	unified := ""
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				return parts[2], nil
			}
		}
		if parts[0] == "0" && parts[1] == "" {
			unified = parts[2]
		}
	}
	if unified == "" {
		return "", fmt.Errorf("process %d has no memory cgroup", pid)
	}
	return unified, nil
}

// resolveOnce fixes a fault's target for good at its first injection: the
// ledger keeps the parameters then resolved, and every later reconcile (or
// restarted agent) uses them, never a fresh lookup. The target is resolved
// in the reconcile that injects it, not before: until the start it may
// still change, or not be there yet.
func resolveOnce(d *agent.Desired, f v1alpha1.AssignedFault, now time.Time, known func(id string) (ledger.Entry, bool), resolve func() (any, error)) error {
	if en, ok := known(f.ID); ok && en.Type == string(f.Type) {
		d.Params = en.Params
		return nil
	}
	if now.Before(d.StartAt) {
		return nil
	}
	p, err := resolve()
	if err != nil {
		return err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	d.Params = b
	return nil
}

// diskLatencyParams resolves a DiskLatency fault's process on this node:
// the main process of the pod's container, or the process the selector
// names, with its start time.
func diskLatencyParams(f v1alpha1.AssignedFault) (disklatency.Params, error) {
	dl := f.DiskLatency
	p := disklatency.Params{Syscalls: dl.Syscalls, DelayMs: int(dl.Delay.Milliseconds()), PathPrefix: dl.PathPrefix}
	if dl.Jitter != nil {
		p.JitterMs = int(dl.Jitter.Milliseconds())
	}
	share := float64(dl.DelayedPercent())
	p.Percent = &share
	switch {
	case f.ContainerID != "":
		id, err := signal.BareContainerID(f.ContainerID)
		if err != nil {
			return p, err
		}
		if p.PID, p.StartTime, err = signal.FindMainProcess(id); err != nil {
			return p, fmt.Errorf("container %s: %w", id, err)
		}
	case dl.Process != nil:
		p.PID, p.ProcessName, p.CommandLineContains = int(dl.Process.PID), dl.Process.Name, dl.Process.CommandLineContains
	default:
		return p, errors.New("diskLatency: neither a container nor a process to trace")
	}
	return disklatency.Resolve(p)
}

// podNetns finds a pod's network namespace from the cgroup of one of its
// processes: the kubelet names pod cgroups after the pod's UID.
func podNetns(uid string) (string, error) {
	if uid == "" {
		return "", errors.New("no pod UID")
	}
	marks := []string{"pod" + uid, "pod" + strings.ReplaceAll(uid, "-", "_")}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		f, err := os.Open(filepath.Join("/proc", e.Name(), "cgroup"))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		found := false
		for sc.Scan() && !found {
			for _, m := range marks {
				if strings.Contains(sc.Text(), m) {
					found = true
				}
			}
		}
		f.Close()
		if found {
			return filepath.Join("/proc", e.Name(), "ns", "net"), nil
		}
	}
	return "", fmt.Errorf("no process of pod %s on this node", uid)
}

// sweepOrphans removes the faultline tables of this namespace that no
// active ledger entry accounts for.
func sweepOrphans(l *ledger.Ledger) ([]string, error) {
	tables, err := netloss.Tables("")
	if err != nil {
		return nil, err
	}
	active := map[string]bool{}
	for _, en := range l.List() {
		if en.Active() {
			active[netloss.TablePrefix+en.ID] = true
		}
	}
	var removed []string
	var errs []error
	for _, t := range tables {
		if active[t] {
			continue
		}
		if err := netloss.Recover(netloss.Spec{ID: strings.TrimPrefix(t, netloss.TablePrefix)}); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, t)
	}
	return removed, errors.Join(errs...)
}
