package v1alpha1

import "fmt"

// The API server defaults a field only where its parent object was sent:
// a manifest applied with kubectl that leaves out `safety` or a rollout's
// `action` is stored without them. Optional objects are pointers, so that
// the Go type writes back exactly what was stored, and the code reads them
// through these accessors, which give the documented defaults.

// Default values of the fields the CRD defaults.
const (
	DefaultRolloutPods   = "Old"
	DefaultRolloutCount  = int32(1)
	DefaultRolloutMethod = "Signal"
	DefaultRolloutSignal = "SIGTERM"
	DefaultDiskPercent   = int32(100)
)

// SafetyRules are the spec's safety bounds, none when it sets none.
func (s *ExperimentSpec) SafetyRules() Safety {
	if s.Safety == nil {
		return Safety{}
	}
	return *s.Safety
}

// EffectiveAction is the rollout's action with the defaults filled in.
func (r *Rollout) EffectiveAction() RolloutAction {
	var a RolloutAction
	if r.Action != nil {
		a = *r.Action
	}
	if a.Pods == "" {
		a.Pods = DefaultRolloutPods
	}
	if a.Count == 0 {
		a.Count = DefaultRolloutCount
	}
	if a.Method == "" {
		a.Method = DefaultRolloutMethod
	}
	if a.Signal == "" {
		a.Signal = DefaultRolloutSignal
	}
	return a
}

// DelayedPercent is the share of matching calls delayed, 100 when unset.
func (d *DiskLatency) DelayedPercent() int32 {
	if d.Percent == nil {
		return DefaultDiskPercent
	}
	return *d.Percent
}

// AbortRequested reports whether someone asked for an abort (the
// annotation AnnotationAbort set to "true").
func (e *Experiment) AbortRequested() bool { return e.Annotations[AnnotationAbort] == "true" }

// AbortPatch is the merge patch that asks for an abort: what faultline
// abort, a Ctrl-C of faultline run, and the uninstall's drain send.
func AbortPatch() []byte {
	return fmt.Appendf(nil, `{"metadata":{"annotations":{%q:"true"}}}`, AnnotationAbort)
}
