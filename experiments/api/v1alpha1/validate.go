package v1alpha1

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxFault is MaxFaultDuration as a time.Duration.
var maxFault, _ = time.ParseDuration(MaxFaultDuration)

// objectiveName is the pattern the CRD gives Objective.Name.
var objectiveName = regexp.MustCompile(`^[a-zA-Z0-9]([-a-zA-Z0-9_. ]{0,62}[a-zA-Z0-9])?$`)

// Validate checks what the CRD's schema and CEL rules check, without a
// cluster, so that `faultline validate` and the API server refuse the same
// specs with the same field paths. A test keeps the two in step.
func (e *Experiment) Validate() field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	t := spec.Child("targets")
	set := 0
	for _, b := range []bool{e.Spec.Targets.Pods != nil, e.Spec.Targets.Nodes != nil, e.Spec.Targets.Deployment != ""} {
		if b {
			set++
		}
	}
	if set != 1 {
		errs = append(errs, field.Invalid(t, "", "targets: set exactly one of pods, nodes or deployment"))
	}
	if n := e.Spec.Targets.Nodes; n != nil && (len(n.Names) == 0) == (n.Selector == nil) {
		errs = append(errs, field.Invalid(t.Child("nodes"), "", "targets.nodes: set exactly one of names or selector"))
	}
	switch e.Spec.Engine {
	case "", EngineFaultline, EngineChaosMesh:
	default:
		errs = append(errs, field.NotSupported(spec.Child("engine"), e.Spec.Engine, Engines))
	}
	fp := spec.Child("faults")
	if len(e.Spec.Faults) == 0 {
		errs = append(errs, field.Required(fp, "at least 1 fault"))
	}
	names := map[string]bool{}
	for i, f := range e.Spec.Faults {
		p := fp.Index(i)
		if names[f.Name] {
			errs = append(errs, field.Duplicate(p.Child("name"), f.Name))
		}
		names[f.Name] = true
		if f.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		}
		if f.Type != FaultNetworkLoss && f.NetworkLoss != nil {
			errs = append(errs, field.Invalid(p, "", "networkLoss: only for type NetworkLoss"))
		}
		if f.Type != FaultRollout && f.Rollout != nil {
			errs = append(errs, field.Invalid(p, "", "rollout: only for type Rollout"))
		}
		if f.Type != FaultDiskLatency && f.DiskLatency != nil {
			errs = append(errs, field.Invalid(p, "", "diskLatency: only for type DiskLatency"))
		}
		if f.Type != FaultMemoryPressure && f.MemoryPressure != nil {
			errs = append(errs, field.Invalid(p, "", "memoryPressure: only for type MemoryPressure"))
		}
		if f.Type != FaultSurge && f.Surge != nil {
			errs = append(errs, field.Invalid(p, "", "surge: only for type Surge"))
		}
		switch f.Type {
		case FaultNetworkLoss:
			if f.NetworkLoss == nil {
				errs = append(errs, field.Required(p.Child("networkLoss"), "networkLoss: required when type is NetworkLoss"))
			} else {
				errs = append(errs, f.NetworkLoss.validate(p.Child("networkLoss"))...)
			}
			if e.Spec.Targets.Deployment != "" {
				errs = append(errs, field.Invalid(t.Child("deployment"), e.Spec.Targets.Deployment, "targets.deployment: only for Rollout and Surge faults; the others need targets.pods or targets.nodes"))
			}
		case FaultRollout:
			if f.Rollout == nil {
				errs = append(errs, field.Required(p.Child("rollout"), "rollout: required when type is Rollout"))
			} else {
				errs = append(errs, f.Rollout.validate(p.Child("rollout"))...)
			}
			if e.Spec.Targets.Deployment == "" {
				errs = append(errs, field.Required(t.Child("deployment"), "targets.deployment: required by Rollout and Surge faults"))
			}
		case FaultDiskLatency:
			if f.DiskLatency == nil {
				errs = append(errs, field.Required(p.Child("diskLatency"), "diskLatency: required when type is DiskLatency"))
			} else {
				errs = append(errs, f.DiskLatency.validate(p.Child("diskLatency"))...)
				if e.Spec.Targets.Nodes != nil && f.DiskLatency.Process == nil {
					errs = append(errs, field.Required(p.Child("diskLatency", "process"), "diskLatency.process: required for node targets (the process to slow on each node)"))
				}
			}
			if e.Spec.Targets.Deployment != "" {
				errs = append(errs, field.Invalid(t.Child("deployment"), e.Spec.Targets.Deployment, "targets.deployment: only for Rollout and Surge faults; the others need targets.pods or targets.nodes"))
			}
		case FaultMemoryPressure:
			if f.MemoryPressure == nil {
				errs = append(errs, field.Required(p.Child("memoryPressure"), "memoryPressure: required when type is MemoryPressure"))
			} else {
				errs = append(errs, f.MemoryPressure.validate(p.Child("memoryPressure"))...)
				if e.Spec.Targets.Nodes != nil && f.MemoryPressure.PushPastLimit {
					errs = append(errs, field.Invalid(spec, "", "memoryPressure.pushPastLimit: only for pod targets; on a node the stressor stops at its size so that the kubelet evicts, not the kernel"))
				}
			}
			if e.Spec.Targets.Deployment != "" {
				errs = append(errs, field.Invalid(t.Child("deployment"), e.Spec.Targets.Deployment, "targets.deployment: only for Rollout and Surge faults; the others need targets.pods or targets.nodes"))
			}
		case FaultSurge:
			if f.Surge == nil {
				errs = append(errs, field.Required(p.Child("surge"), "surge: required when type is Surge"))
			} else if f.Surge.Replicas < 1 || f.Surge.Replicas > 1000 {
				errs = append(errs, field.Invalid(p.Child("surge", "replicas"), f.Surge.Replicas, "should be greater than or equal to 1 and less than or equal to 1000"))
			}
			if e.Spec.Targets.Deployment == "" {
				errs = append(errs, field.Required(t.Child("deployment"), "targets.deployment: required by Rollout and Surge faults"))
			}
		case "":
			errs = append(errs, field.Required(p.Child("type"), ""))
		default:
			// A family whose spec has no fields of its own needs no case.
			if !slices.Contains(FaultTypes, f.Type) {
				errs = append(errs, field.NotSupported(p.Child("type"), f.Type, FaultTypes))
			}
		}
		if f.Duration.Duration == 0 {
			errs = append(errs, field.Required(p.Child("duration"), "duration: must be more than 0s and at most "+MaxFaultDuration))
		} else if f.Duration.Duration < 0 || f.Duration.Duration > maxFault {
			errs = append(errs, field.Invalid(p.Child("duration"), f.Duration.Duration.String(), "duration: must be more than 0s and at most "+MaxFaultDuration))
		}
		if f.StartAfter != nil && (f.StartAfter.Duration < 0 || f.StartAfter.Duration > maxFault) {
			errs = append(errs, field.Invalid(p.Child("startAfter"), f.StartAfter.Duration.String(), "startAfter: must be between 0s and "+MaxFaultDuration))
		}
	}
	if n := len(e.Spec.Workloads); n > 64 {
		errs = append(errs, field.TooMany(spec.Child("workloads"), n, 64))
	}
	seenW := map[string]bool{}
	for i, w := range e.Spec.Workloads {
		switch p := spec.Child("workloads").Index(i); {
		case w == "":
			errs = append(errs, field.Required(p, "the name of a Deployment of the experiment's namespace"))
		case len(w) > 253:
			errs = append(errs, field.TooLong(p, w, 253))
		case seenW[w]:
			errs = append(errs, field.Duplicate(p, w))
		}
		seenW[w] = true
	}
	if slices.ContainsFunc(e.Spec.Faults, func(f Fault) bool { return f.Type == FaultRollout }) &&
		slices.ContainsFunc(e.Spec.Faults, func(f Fault) bool { return f.Type == FaultSurge }) {
		errs = append(errs, field.Invalid(fp, "", "faults: a Rollout and a Surge fault cannot share one experiment's Deployment (the surge would move the rollout's point)"))
	}
	if e.Spec.Engine == EngineChaosMesh {
		for i := range e.Spec.Faults {
			errs = append(errs, e.Spec.Faults[i].ValidateChaosMesh(&e.Spec.Targets, fp.Index(i))...)
		}
	}
	for i, o := range e.Spec.Objectives {
		if !objectiveName.MatchString(o.Name) {
			errs = append(errs, field.Invalid(spec.Child("objectives").Index(i).Child("name"), o.Name, "1 to 64 letters, digits, spaces, '-', '_' or '.', starting and ending with a letter or digit"))
		}
		if o.Expr == "" {
			errs = append(errs, field.Required(spec.Child("objectives").Index(i).Child("expr"), "a CEL expression over the measurements, such as evictions.count == 0"))
		}
	}
	if tr := e.Spec.Traffic; tr != nil {
		errs = append(errs, tr.validate(spec.Child("traffic"))...)
	}
	if pr := e.Spec.Prometheus; pr != nil {
		errs = append(errs, pr.validate(spec.Child("prometheus"))...)
	}
	if s := e.Spec.SafetyRules(); s.MaxTargetPercent != nil && (*s.MaxTargetPercent < 1 || *s.MaxTargetPercent > 100) {
		errs = append(errs, field.Invalid(spec.Child("safety", "maxTargetPercent"), *s.MaxTargetPercent, "must be between 1 and 100"))
	}
	if s := e.Spec.SafetyRules(); s.MaxTargets != nil && *s.MaxTargets < 1 {
		errs = append(errs, field.Invalid(spec.Child("safety", "maxTargets"), *s.MaxTargets, "must be at least 1"))
	}
	return errs
}

func (n *NetworkLoss) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if n.LossPercent < 0 || n.LossPercent > 100 {
		errs = append(errs, field.Invalid(p.Child("lossPercent"), n.LossPercent, "must be between 0 and 100"))
	}
	switch n.Direction {
	case "", "egress", "ingress", "both":
	default:
		errs = append(errs, field.NotSupported(p.Child("direction"), n.Direction, []string{"egress", "ingress", "both"}))
	}
	switch n.Protocol {
	case "", "tcp", "udp", "icmp":
	default:
		errs = append(errs, field.NotSupported(p.Child("protocol"), n.Protocol, []string{"tcp", "udp", "icmp"}))
	}
	for i, c := range n.Peers {
		if _, err := netip.ParsePrefix(c); err != nil {
			errs = append(errs, field.Invalid(p.Child("peers").Index(i), c, "peers: each must be a CIDR such as 10.0.0.0/8"))
		}
	}
	if n.CorruptPercent < 0 || n.CorruptPercent > 100 {
		errs = append(errs, field.Invalid(p.Child("corruptPercent"), n.CorruptPercent, "must be between 0 and 100"))
	}
	if n.Delay != nil && (n.Delay.Duration < 0 || n.Delay.Duration > 10*time.Second) {
		errs = append(errs, field.Invalid(p.Child("delay"), n.Delay.Duration.String(), "must be between 0s and 10s"))
	}
	for i, port := range n.Ports {
		if port < 1 || port > 65535 {
			errs = append(errs, field.Invalid(p.Child("ports").Index(i), port, "must be between 1 and 65535"))
		}
	}
	return errs
}

func (r *Rollout) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if (r.Trigger == nil) == (r.Wait == nil) {
		errs = append(errs, field.Invalid(p, "", "rollout: set exactly one of trigger (faultline starts the rollout) or wait (for one to start)"))
	}
	if tr := r.Trigger; tr != nil {
		n := 0
		for _, b := range []bool{tr.Restart, tr.Image != nil, tr.Env != nil} {
			if b {
				n++
			}
		}
		if n != 1 {
			errs = append(errs, field.Invalid(p.Child("trigger"), "", "trigger: set exactly one of restart, image or env"))
		}
		if tr.Image != nil && tr.Image.Image == "" {
			errs = append(errs, field.Required(p.Child("trigger", "image", "image"), "an image reference"))
		}
		if tr.Env != nil && tr.Env.Name == "" {
			errs = append(errs, field.Required(p.Child("trigger", "env", "name"), "a variable name"))
		}
	}
	at := r.At
	n := 0
	for _, b := range []bool{at.NewReady != nil, at.ProgressPercent != nil, at.After != nil} {
		if b {
			n++
		}
	}
	if n != 1 {
		errs = append(errs, field.Invalid(p.Child("at"), "", "at: set exactly one of newReady, progressPercent or after"))
	}
	if at.NewReady != nil && (*at.NewReady < 1 || *at.NewReady > 10000) {
		errs = append(errs, field.Invalid(p.Child("at", "newReady"), *at.NewReady, "must be between 1 and 10000"))
	}
	if at.ProgressPercent != nil && (*at.ProgressPercent < 1 || *at.ProgressPercent > 100) {
		errs = append(errs, field.Invalid(p.Child("at", "progressPercent"), *at.ProgressPercent, "must be between 1 and 100"))
	}
	if at.After != nil && (at.After.Duration < 0 || at.After.Duration > maxFault) {
		errs = append(errs, field.Invalid(p.Child("at"), "", "at.after: must be between 0s and 24h"))
	}
	a := r.EffectiveAction()
	switch a.Pods {
	case "", "Old", "New":
	default:
		errs = append(errs, field.NotSupported(p.Child("action", "pods"), a.Pods, []string{"Old", "New"}))
	}
	switch a.Method {
	case "", "Signal", "Delete":
	default:
		errs = append(errs, field.NotSupported(p.Child("action", "method"), a.Method, []string{"Signal", "Delete"}))
	}
	switch a.Signal {
	case "", "SIGTERM", "SIGKILL":
	default:
		errs = append(errs, field.NotSupported(p.Child("action", "signal"), a.Signal, []string{"SIGTERM", "SIGKILL"}))
	}
	if a.Count != 0 && (a.Count < 1 || a.Count > 100) {
		errs = append(errs, field.Invalid(p.Child("action", "count"), a.Count, "must be between 1 and 100"))
	}
	if a.Method != "Delete" && a.Method != "" && a.GracePeriodSeconds != nil {
		errs = append(errs, field.Invalid(p.Child("action"), "", "gracePeriodSeconds: only for method Delete"))
	}
	return errs
}

func (t *Traffic) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if !strings.HasPrefix(t.URL, "http://") && !strings.HasPrefix(t.URL, "https://") {
		errs = append(errs, field.Invalid(p, "", "traffic.url: must be an http:// or https:// URL"))
	}
	if t.Rate < 1 || t.Rate > MaxTrafficRate {
		errs = append(errs, field.Invalid(p.Child("rate"), t.Rate, fmt.Sprintf("must be between 1 and %d requests per second", MaxTrafficRate)))
	}
	switch t.Method {
	case "", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
	default:
		errs = append(errs, field.NotSupported(p.Child("method"), t.Method, []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}))
	}
	if t.Timeout != nil && (t.Timeout.Duration <= 0 || t.Timeout.Duration > time.Minute) {
		errs = append(errs, field.Invalid(p, "", "traffic.timeout: must be more than 0s and at most 60s"))
	}
	if t.Baseline != nil && (t.Baseline.Duration < 0 || t.Baseline.Duration > time.Hour) {
		errs = append(errs, field.Invalid(p, "", "traffic.baseline: must be between 0s and 1h"))
	}
	if t.Recovery != nil && (t.Recovery.Duration < 0 || t.Recovery.Duration > time.Hour) {
		errs = append(errs, field.Invalid(p, "", "traffic.recovery: must be between 0s and 1h"))
	}
	return errs
}

// TrafficWindows are the traffic's baseline and recovery, with defaults.
func (t *Traffic) TrafficWindows() (baseline, recovery time.Duration) {
	baseline, recovery = 10*time.Second, 10*time.Second
	if t.Baseline != nil {
		baseline = t.Baseline.Duration
	}
	if t.Recovery != nil {
		recovery = t.Recovery.Duration
	}
	return baseline, recovery
}

func (d *DiskLatency) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if d.Delay.Duration < 0 || d.Delay.Duration > 10*time.Second {
		errs = append(errs, field.Invalid(p, "", "diskLatency.delay: must be between 0s and 10s"))
	}
	if d.Jitter != nil && d.Jitter.Duration > d.Delay.Duration {
		errs = append(errs, field.Invalid(p, "", "diskLatency.jitter: must be at most the delay"))
	}
	if pc := d.DelayedPercent(); pc < 0 || pc > 100 {
		errs = append(errs, field.Invalid(p.Child("percent"), pc, "must be between 0 and 100"))
	}
	allowed := []string{"fsync", "fdatasync", "write", "pwrite64", "sync_file_range"}
	for i, s := range d.Syscalls {
		if !slices.Contains(allowed, s) {
			errs = append(errs, field.NotSupported(p.Child("syscalls").Index(i), s, allowed))
		}
	}
	if pr := d.Process; pr != nil && (pr.Name == "") == (pr.PID == 0) {
		errs = append(errs, field.Invalid(p.Child("process"), "", "process: set exactly one of name or pid"))
	}
	return errs
}

func (m *MemoryPressure) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if (m.Size == nil) == (m.Percent == 0) {
		errs = append(errs, field.Invalid(p, "", "memoryPressure: set exactly one of size or percent"))
	}
	if m.Percent != 0 && (m.Percent < 1 || m.Percent > 100) {
		errs = append(errs, field.Invalid(p.Child("percent"), m.Percent, "should be less than or equal to 100 and greater than or equal to 1: a share of the container's limit or of the node's allocatable memory"))
	}
	if m.RampPerSecond.Sign() <= 0 {
		errs = append(errs, field.Invalid(p, "", "memoryPressure.rampPerSecond: must be more than 0 (bytes a second, such as 64Mi)"))
	}
	if m.Size != nil && m.Size.Sign() <= 0 {
		errs = append(errs, field.Invalid(p, "", "memoryPressure.size: must be more than 0, such as 200Mi"))
	}
	if m.Hold != nil && m.Hold.Duration <= 0 {
		errs = append(errs, field.Invalid(p, "", "memoryPressure.hold: must be more than 0s"))
	}
	return errs
}

func (pr *Prometheus) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if (pr.Address == "") == (pr.Scrape == nil) {
		errs = append(errs, field.Invalid(p, "", "prometheus: set exactly one of address (a Prometheus server) or scrape (read /metrics directly)"))
	}
	if pr.Address != "" && !strings.HasPrefix(pr.Address, "http://") && !strings.HasPrefix(pr.Address, "https://") {
		errs = append(errs, field.Invalid(p, "", "prometheus.address: must be an http:// or https:// URL"))
	}
	for _, w := range []struct {
		name string
		d    *metav1.Duration
	}{{"baseline", pr.Baseline}, {"recovery", pr.Recovery}} {
		if w.d != nil && (w.d.Duration < 10*time.Second || w.d.Duration > time.Hour) {
			errs = append(errs, field.Invalid(p, "", "prometheus."+w.name+": must be between 10s and 1h"))
		}
	}
	names := map[string]bool{}
	for i, q := range pr.Queries {
		if names[q.Name] {
			errs = append(errs, field.Duplicate(p.Child("queries").Index(i).Child("name"), q.Name))
		}
		names[q.Name] = true
		if q.Query == "" {
			errs = append(errs, field.Required(p.Child("queries").Index(i).Child("query"), "a PromQL expression"))
		}
	}
	return errs
}

// PrometheusWindows are the baseline and recovery, with defaults.
func (pr *Prometheus) PrometheusWindows() (baseline, recovery time.Duration) {
	baseline, recovery = 30*time.Second, 30*time.Second
	if pr.Baseline != nil {
		baseline = pr.Baseline.Duration
	}
	if pr.Recovery != nil {
		recovery = pr.Recovery.Duration
	}
	return baseline, recovery
}

// Windows are the experiment's measurement windows before and after the
// faults: the longest that its traffic and Prometheus ask for.
func (s *ExperimentSpec) Windows() (baseline, recovery time.Duration) {
	if s.Traffic != nil {
		baseline, recovery = s.Traffic.TrafficWindows()
	}
	if s.Prometheus != nil {
		b, r := s.Prometheus.PrometheusWindows()
		baseline, recovery = max(baseline, b), max(recovery, r)
	}
	return baseline, recovery
}

// ValidateChaosMesh refuses what engine chaos-mesh cannot express of the
// fault on these targets, with the messages of the CRD's CEL rules: a
// Chaos Mesh object that only looks like the fault would judge the
// objectives against a fault that did not happen. p is the fault's path.
//
// One rule of the CRD is not here: diskLatency.percent of 0, which Chaos
// Mesh reads as 100. The Go type cannot tell an explicit 0 from an unset
// percent (which the API server defaults to 100), so the translation
// refuses it instead.
func (f *Fault) ValidateChaosMesh(t *Targets, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if f.Type == FaultSurge {
		errs = append(errs, field.Invalid(p.Child("type"), f.Type, "surge: not under engine chaos-mesh (Chaos Mesh has no fault that scales a Deployment up); use engine: faultline"))
	}
	if (f.Type == FaultDiskLatency || f.Type == FaultMemoryPressure) && t.Nodes != nil {
		errs = append(errs, field.Invalid(field.NewPath("spec", "targets", "nodes"), "", "targets.nodes: DiskLatency and MemoryPressure need targets.pods under engine chaos-mesh (Chaos Mesh slows and fills containers, not a node's process or the node as a whole)"))
	}
	if n := f.NetworkLoss; n != nil {
		p := p.Child("networkLoss")
		if len(n.Ports) > 0 {
			errs = append(errs, field.Invalid(p.Child("ports"), n.Ports, "networkLoss.ports: not under engine chaos-mesh (a NetworkChaos cannot match ports); drop ports or use engine: faultline"))
		}
		if n.Protocol != "" {
			errs = append(errs, field.Invalid(p.Child("protocol"), n.Protocol, "networkLoss.protocol: not under engine chaos-mesh (a NetworkChaos cannot match a protocol); drop protocol or use engine: faultline"))
		}
		peers := len(n.Peers) > 0 || n.TowardAPIServer
		if n.Direction != "egress" && (n.LossPercent != 100 || !peers) {
			errs = append(errs, field.Invalid(p.Child("direction"), n.Direction, "networkLoss.direction: must be egress under engine chaos-mesh, unless lossPercent is 100 with peers or towardAPIServer (Chaos Mesh's loss acts on the packets the pods send; only its partition, a loss of 100% toward given peers, cuts ingress too)"))
		}
		if peers && (n.Delay != nil || n.CorruptPercent != 0) {
			errs = append(errs, field.Invalid(p.Child("delay"), "", "networkLoss.delay: delay and corruptPercent not with peers or towardAPIServer under engine chaos-mesh (one NetworkChaos would restrict them to the peers, where faultline applies them to every sent packet); drop them, or the peers"))
		}
	}
	if d := f.DiskLatency; d != nil {
		p := p.Child("diskLatency")
		if d.Process != nil {
			errs = append(errs, field.Invalid(p.Child("process"), "", "diskLatency.process: not under engine chaos-mesh (an IOChaos slows a volume of the pods' containers, not a process); target pods and give pathPrefix"))
		}
		if !strings.HasPrefix(d.PathPrefix, "/") {
			errs = append(errs, field.Required(p.Child("pathPrefix"), "diskLatency.pathPrefix: required under engine chaos-mesh, an absolute directory inside a volume of the container such as /var/lib/etcd (an IOChaos slows the files of one volume)"))
		}
		if d.Jitter != nil {
			errs = append(errs, field.Invalid(p.Child("jitter"), d.Jitter.Duration.String(), "diskLatency.jitter: not under engine chaos-mesh (an IOChaos delays every call by exactly the delay); drop jitter"))
		}
		for i, s := range d.Syscalls {
			if s == "sync_file_range" {
				errs = append(errs, field.Invalid(p.Child("syscalls").Index(i), s, "diskLatency.syscalls: under engine chaos-mesh only fsync, fdatasync, write and pwrite64 (Chaos Mesh sees a volume's file operations, and sync_file_range is not one)"))
			}
		}
	}
	if m := f.MemoryPressure; m != nil {
		p := p.Child("memoryPressure")
		if m.Percent != 0 {
			errs = append(errs, field.Invalid(p.Child("percent"), m.Percent, "memoryPressure.percent: not under engine chaos-mesh (one StressChaos holds one size for all its pods); give size"))
		}
		if m.Hold != nil {
			errs = append(errs, field.Invalid(p.Child("hold"), m.Hold.Duration.String(), "memoryPressure.hold: not under engine chaos-mesh (Chaos Mesh holds the memory until the fault's duration ends); shorten duration instead"))
		}
		if m.PushPastLimit {
			errs = append(errs, field.Invalid(p.Child("pushPastLimit"), true, "memoryPressure.pushPastLimit: not under engine chaos-mesh (Chaos Mesh's stressor stops at its size and cannot force one OOM kill); drop it or use engine: faultline"))
		}
	}
	if r := f.Rollout; r != nil && r.EffectiveAction().Method != "Delete" && r.EffectiveAction().Signal != "SIGKILL" {
		errs = append(errs, field.Invalid(p.Child("rollout", "action"), "", "rollout.action: under engine chaos-mesh, method Delete (a pod-kill: the kubelet sends SIGTERM) or signal SIGKILL (a container-kill); Chaos Mesh cannot send SIGTERM to a container"))
	}
	return errs
}
