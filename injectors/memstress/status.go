package memstress

import "fmt"

// Status is what is known of a fault's stressor.
type Status struct {
	// Injected is false when the fault has no state: never injected, or
	// recovered.
	Injected      bool   `json:"injected"`
	Mode          string `json:"mode"`
	PushPastLimit bool   `json:"pushPastLimit,omitempty"`
	PID           int    `json:"pid,omitempty"`
	Alive         bool   `json:"alive"`
	// Phase is the stressor's (starting, ramping, pushing, holding,
	// released), or oom-killed, or gone.
	Phase         string `json:"phase,omitempty"`
	ResidentBytes int64  `json:"residentBytes"` // the stressor's VmRSS, as it last reported it
	TouchedBytes  int64  `json:"touchedBytes"`  // what it allocated and wrote, as it last reported it
	TargetBytes   int64  `json:"targetBytes"`
	// PeakBytes is the most the stressor held: its cgroup's peak charge
	// where the cgroup counts one, else the most it reported touching.
	PeakBytes int64 `json:"peakBytes"`
	// CgroupUsageBytes is the charge of the fault's own cgroup now (0 where
	// it counts none: cgroup v2 without the memory controller).
	CgroupUsageBytes int64 `json:"cgroupUsageBytes"`
	// StressorOOMKilled is set when the kernel OOM-killed the stressor.
	StressorOOMKilled bool `json:"stressorOOMKilled"`
	// OOMKills counts the OOM kills in the target cgroup's subtree (node
	// mode: the parent's) since the injection, the stressor's included.
	OOMKills uint64 `json:"oomKills"`
	// Outcome (an Outcome* constant) and Detail of a stressor that ended
	// without Recover.
	Outcome string `json:"outcome,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// String is a one-line summary for a ledger or a report. It changes with
// the stressor's phase and the OOM kills, not with each page it touches:
// reports are written when it changes, and a ramp is not news each second.
func (s Status) String() string {
	kills := plural(s.OOMKills, "OOM kill") + " in the cgroup"
	switch {
	case !s.Injected:
		return "no stressor (not injected, or recovered)"
	case s.StressorOOMKilled:
		return fmt.Sprintf("stressor OOM-killed at %s (%s)", mib(s.PeakBytes), kills)
	case s.Alive && s.Phase == PhaseHolding:
		return fmt.Sprintf("stressor holding its %s target resident (%s)", mib(s.TargetBytes), kills)
	case s.Alive && s.Phase == PhasePushing:
		return fmt.Sprintf("stressor pushing past its %s target until an OOM kill (%s)", mib(s.TargetBytes), kills)
	case s.Alive && s.Phase == PhaseRamping:
		return fmt.Sprintf("stressor ramping to %s (%s)", mib(s.TargetBytes), kills)
	case s.Alive:
		return fmt.Sprintf("stressor %d %s (%s)", s.PID, s.Phase, kills)
	case s.Outcome == OutcomeReleased:
		return fmt.Sprintf("stressor released %s after another process's OOM kill (%s)", mib(s.PeakBytes), kills)
	case s.Outcome == OutcomeTargetGone:
		return fmt.Sprintf("stressor left at %s: %s (%s)", mib(s.PeakBytes), s.Detail, kills)
	case s.Outcome == OutcomeExited:
		return fmt.Sprintf("stressor exited at %s: %s (%s)", mib(s.PeakBytes), s.Detail, kills)
	}
	return fmt.Sprintf("stressor gone at %s: %s (%s)", mib(s.PeakBytes), s.Detail, kills)
}

func plural(n uint64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// mib formats bytes in MiB, rounded.
func mib(b int64) string {
	return fmt.Sprintf("%d MiB", (b+1<<19)>>20)
}
