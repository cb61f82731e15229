package v1alpha1

import (
	"net/netip"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxFault is MaxFaultDuration as a time.Duration.
var maxFault, _ = time.ParseDuration(MaxFaultDuration)

// Validate checks what the CRD's schema and CEL rules check, without a
// cluster, so that `faultline validate` and the API server refuse the same
// specs with the same field paths. A test keeps the two in step.
func (e *Experiment) Validate() field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	t := spec.Child("targets")
	if (e.Spec.Targets.Pods == nil) == (e.Spec.Targets.Nodes == nil) {
		errs = append(errs, field.Invalid(t, "", "targets: set exactly one of pods or nodes"))
	}
	if n := e.Spec.Targets.Nodes; n != nil && (len(n.Names) == 0) == (n.Selector == nil) {
		errs = append(errs, field.Invalid(t.Child("nodes"), "", "targets.nodes: set exactly one of names or selector"))
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
		switch f.Type {
		case FaultNetworkLoss:
			if f.NetworkLoss == nil {
				errs = append(errs, field.Required(p.Child("networkLoss"), "networkLoss: required when type is NetworkLoss"))
			} else {
				errs = append(errs, f.NetworkLoss.validate(p.Child("networkLoss"))...)
			}
		case "":
			errs = append(errs, field.Required(p.Child("type"), ""))
		default:
			errs = append(errs, field.NotSupported(p.Child("type"), f.Type, []FaultType{FaultNetworkLoss}))
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
	for i, o := range e.Spec.Objectives {
		if o.Expr == "" {
			errs = append(errs, field.Required(spec.Child("objectives").Index(i).Child("expr"), "a CEL expression over the measurements, such as evictions.count == 0"))
		}
	}
	if s := e.Spec.Safety; s.MaxTargetPercent != nil && (*s.MaxTargetPercent < 1 || *s.MaxTargetPercent > 100) {
		errs = append(errs, field.Invalid(spec.Child("safety", "maxTargetPercent"), *s.MaxTargetPercent, "must be between 1 and 100"))
	}
	if s := e.Spec.Safety; s.MaxTargets != nil && *s.MaxTargets < 1 {
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
