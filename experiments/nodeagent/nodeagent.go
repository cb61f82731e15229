// Package nodeagent is the node agent's controller: it turns its node's
// FaultAssignment into the faults the injectors' engine holds, resolved on
// this node (a pod's network namespace, a container's main process or
// memory cgroup), and reports their state back on the assignment's status,
// acknowledging each generation before it injects.
package nodeagent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
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

// Factories are the fault families an agent carries, by fault type.
var Factories = map[string]injectors.Factory{
	string(v1alpha1.FaultNetworkLoss):    netloss.New,
	string(v1alpha1.FaultRollout):        signal.New,
	string(v1alpha1.FaultPodKill):        signal.New,
	string(v1alpha1.FaultDiskLatency):    disklatency.New,
	string(v1alpha1.FaultMemoryPressure): memstress.New,
}

// NodeEnv is what resolving a fault needs to know of this node.
type NodeEnv struct {
	// LedgerDir holds the ledger and the faults' own state (a stressor's).
	LedgerDir string
	// PodsCgroup is the kubelet's pod cgroup, where node memory pressure
	// is made so that the kubelet counts it.
	PodsCgroup string
}

// Reconciler turns this node's FaultAssignment into the engine's desired
// faults and reports their state back. Any event reconciles the whole node.
type Reconciler struct {
	client.Client
	// Namespace holds the node's FaultAssignment.
	Namespace string
	// Node is this node's name, and its FaultAssignment's.
	Node string
	Env  NodeEnv
	// Engine injects and recovers, from the on-node ledger.
	Engine *agent.Engine
	// Poke, when set, is told after each pass (the deadline loop waits on
	// it).
	Poke chan struct{}
	// unresolved faults (say, a pod not found on this node) and why
	unresolved map[string]string
}

// SetupWithManager watches the node's FaultAssignment, with one pass at the
// start whether or not there is one: an assignment deleted while the agent
// was down has no event, and its faults must go now, not at their
// deadlines.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.unresolved = map[string]string{}
	// Retries build the controller again in the same process.
	opts := controller.Options{SkipNameValidation: ptr.To(true)}
	start := make(chan event.GenericEvent, 1)
	start <- event.GenericEvent{Object: &v1alpha1.FaultAssignment{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.Node}}}
	return ctrl.NewControllerManagedBy(mgr).Named("faultassignment").For(&v1alpha1.FaultAssignment{}).
		WatchesRawSource(source.Channel(start, &handler.EnqueueRequestForObject{})).
		WithOptions(opts).Complete(r)
}

func (r *Reconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	var list v1alpha1.FaultAssignmentList
	// No assignment at all is no fault: the engine recovers what it holds.
	if err := r.List(ctx, &list, client.InNamespace(r.Namespace)); err != nil {
		return ctrl.Result{}, err
	}
	var desired []agent.Desired
	var errs []error
	for _, fa := range list.Items {
		if fa.Spec.NodeName != r.Node {
			continue
		}
		for _, f := range fa.Spec.Faults {
			d, err := desiredFor(f, time.Now(), r.Engine.Ledger.Get, r.Env)
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
	next, err := r.Engine.Reconcile(ctx, desired)
	if err != nil {
		errs = append(errs, err)
	}
	if r.Poke != nil {
		select {
		case r.Poke <- struct{}{}:
		default:
		}
	}
	reported = r.reportAll(ctx, list.Items) && reported
	// Recovered faults are kept a day for reports, then dropped.
	if err := r.Engine.Ledger.Forget(time.Now().Add(-24 * time.Hour)); err != nil {
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

func (r *Reconciler) active() bool {
	for _, en := range r.Engine.Ledger.List() {
		if en.Active() {
			return true
		}
	}
	return false
}

func (r *Reconciler) reportAll(ctx context.Context, fas []v1alpha1.FaultAssignment) bool {
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
func (r *Reconciler) report(ctx context.Context, fa *v1alpha1.FaultAssignment) error {
	st := v1alpha1.FaultAssignmentStatus{ObservedGeneration: fa.Generation}
	for _, f := range fa.Spec.Faults {
		s := v1alpha1.AssignedFaultStatus{ID: f.ID, State: v1alpha1.FaultPending}
		if why, ok := r.unresolved[f.ID]; ok && !f.StartAt.After(time.Now()) {
			s.State, s.Error = v1alpha1.FaultFailed, why
		}
		if en, ok := r.Engine.Ledger.Get(f.ID); ok {
			s.State, s.Error = stateOf[en.State], en.Error
			s.Message = r.Engine.Effect(ctx, f.ID)
			// To the second, as the API server keeps them: a finer time
			// never equals the stored one, and every pass (each second
			// while a fault is active) would write the status again.
			if en.InjectedAt != nil {
				t := metav1.NewTime(*en.InjectedAt).Rfc3339Copy()
				s.InjectedAt = &t
			}
			if en.RecoveredAt != nil {
				t := metav1.NewTime(*en.RecoveredAt).Rfc3339Copy()
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
func desiredFor(f v1alpha1.AssignedFault, now time.Time, known func(id string) (ledger.Entry, bool), env NodeEnv) (agent.Desired, error) {
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
	case v1alpha1.FaultRollout, v1alpha1.FaultPodKill:
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
func memoryParams(f v1alpha1.AssignedFault, env NodeEnv) (memstress.Params, error) {
	m := f.MemoryPressure
	p := memstress.Params{Mode: memstress.ModeNode, Cgroup: env.PodsCgroup, TargetBytes: m.SizeBytes,
		RampBytesPerSecond: m.RampBytesPerSecond, PushPastLimit: m.PushPastLimit, StateDir: env.LedgerDir}
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
