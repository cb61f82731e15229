package v1alpha1

import (
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

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

// ValidateEngine refuses what the spec's engine cannot express, naming the
// field of each fault. The CRD's CEL rules refuse the same with the same
// messages, but a rule that reads spec.engine and a fault together can
// only name spec: this says which fault and which of its fields.
func (s *ExperimentSpec) ValidateEngine() field.ErrorList {
	if s.Engine != EngineChaosMesh {
		return nil
	}
	var errs field.ErrorList
	for i := range s.Faults {
		errs = append(errs, s.Faults[i].ValidateChaosMesh(&s.Targets, field.NewPath("spec", "faults").Index(i))...)
	}
	return errs
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
	if k := f.PodKill; k != nil {
		ok := k.Interval == nil
		if k.Method == "Signal" {
			ok = ok && k.Container != "" && k.EffectiveSignal() == "SIGKILL"
		} else {
			ok = ok && k.GracePeriodSeconds != nil
		}
		if !ok {
			errs = append(errs, field.Invalid(p.Child("podKill"), "", "podKill: under engine chaos-mesh, one round (no interval: Chaos Mesh kills once per object), and method Delete with gracePeriodSeconds (a pod-kill; Chaos Mesh reads no pod's own) or method Signal with container and signal SIGKILL (a container-kill)"))
		}
	}
	return errs
}
