package disklatency

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"faultline.dev/faultline/injectors/procfs"
)

// Limits of the parameters.
const (
	MaxDelayMs = 10000
	// maxCommLen is how much of a process name /proc/PID/comm holds
	// (TASK_COMM_LEN 16, less the terminating NUL).
	maxCommLen = 15
)

// DefaultSyscalls are the system calls delayed when Params.Syscalls is empty:
// the ones that wait for the disk.
var DefaultSyscalls = []string{"fsync", "fdatasync"}

// syscallNames are the system calls a fault may delay, in the order error
// messages list them. Each takes a file descriptor as its first argument.
var syscallNames = []string{"fsync", "fdatasync", "write", "pwrite64", "sync_file_range"}

// Params are a disk-latency fault's parameters as the agent receives them.
//
// The target is one process, given by PID or by ProcessName (exactly one of
// them), and identified once resolved by its PID and StartTime: Resolve
// fills them, and a fault is built (New) only from resolved parameters, so
// that the process the ledger records is the one traced after an agent
// restart, and a PID reused by another process is never traced.
type Params struct {
	// PID of the target process, as this node's /proc numbers it.
	PID int `json:"pid,omitempty"`
	// ProcessName is matched exactly against /proc/PID/comm (at most 15
	// bytes) of every process; it must match exactly one.
	ProcessName string `json:"processName,omitempty"`
	// CommandLineContains narrows ProcessName to the processes whose
	// command line (/proc/PID/cmdline, arguments joined by spaces)
	// contains it: several etcds share a name, not a data directory.
	CommandLineContains string `json:"commandLineContains,omitempty"`
	// StartTime of the target (field 22 of /proc/PID/stat, clock ticks since
	// boot): filled by Resolve.
	StartTime uint64 `json:"startTime,omitempty"`

	// Syscalls to delay: fsync, fdatasync (the default, when empty), write,
	// pwrite64, sync_file_range.
	Syscalls []string `json:"syscalls,omitempty"`
	// DelayMs is added to each delayed call (0 to 10000).
	DelayMs int `json:"delayMs"`
	// JitterMs spreads the delay uniformly over DelayMs ± JitterMs (0 to
	// DelayMs).
	JitterMs int `json:"jitterMs,omitempty"`
	// Percent of the matching calls delayed, drawn at random for each call
	// (0 to 100; nil means 100).
	Percent *float64 `json:"percent,omitempty"`
	// PathPrefix, when set, restricts the fault to calls on a file under
	// this directory (or on the directory itself), as readlink of
	// /proc/PID/fd/N shows it to the agent, e.g. etcd's WAL directory.
	PathPrefix string `json:"pathPrefix,omitempty"`
}

// Share is the percentage of matching calls delayed: Percent, or 100.
func (p Params) Share() float64 {
	if p.Percent == nil {
		return 100
	}
	return *p.Percent
}

// validateShape checks every field but the target's identity, naming the
// bad field, and returns the parameters in canonical form (default syscalls
// filled, path prefix cleaned).
func (p Params) validateShape() (Params, error) {
	if len(p.Syscalls) == 0 {
		p.Syscalls = slices.Clone(DefaultSyscalls)
	}
	for _, s := range p.Syscalls {
		if !slices.Contains(syscallNames, s) {
			return p, fmt.Errorf("syscalls: %q is not one of %s", s, strings.Join(syscallNames, ", "))
		}
	}
	if p.DelayMs < 0 || p.DelayMs > MaxDelayMs {
		return p, fmt.Errorf("delayMs: must be between 0 and %d, got %d", MaxDelayMs, p.DelayMs)
	}
	if p.JitterMs < 0 || p.JitterMs > p.DelayMs {
		return p, fmt.Errorf("jitterMs: must be between 0 and delayMs (%d), got %d", p.DelayMs, p.JitterMs)
	}
	if s := p.Share(); !(s >= 0 && s <= 100) { // NaN fails too
		return p, fmt.Errorf("percent: must be between 0 and 100, got %v", s)
	}
	if p.PathPrefix != "" {
		if !filepath.IsAbs(p.PathPrefix) {
			return p, fmt.Errorf("pathPrefix: must be an absolute path, got %q", p.PathPrefix)
		}
		p.PathPrefix = filepath.Clean(p.PathPrefix)
	}
	if p.PID < 0 {
		return p, fmt.Errorf("pid: must be positive, got %d", p.PID)
	}
	if p.CommandLineContains != "" && p.ProcessName == "" {
		return p, errors.New("commandLineContains: only with processName")
	}
	if len(p.ProcessName) > maxCommLen {
		return p, fmt.Errorf("processName: %q is %d bytes long, but /proc/PID/comm holds at most %d", p.ProcessName, len(p.ProcessName), maxCommLen)
	}
	return p, nil
}

// Validate checks resolved parameters, as New receives them, naming the bad
// field, and returns them in canonical form.
func (p Params) Validate() (Params, error) {
	p, err := p.validateShape()
	if err != nil {
		return p, err
	}
	if p.PID == 0 {
		if p.ProcessName != "" {
			return p, fmt.Errorf("pid: must be set: processName %q is resolved to a pid and start time by Resolve before the fault is built", p.ProcessName)
		}
		return p, errors.New("pid: must be set (or processName, then resolved by Resolve)")
	}
	if p.StartTime == 0 {
		return p, errors.New("startTime: must be set (field 22 of /proc/PID/stat; Resolve fills it), so that a reused pid is never traced")
	}
	return p, nil
}

// Resolve checks the parameters and finds their target: the one process
// whose comm is ProcessName, or the process PID; it returns them with PID
// and StartTime filled. Parameters resolved already (StartTime set) are
// checked: the process must still be there with that start time (and that
// name, when ProcessName is set).
func Resolve(p Params) (Params, error) {
	return resolve(ProcRoot, p)
}

func resolve(procRoot string, p Params) (Params, error) {
	p, err := p.validateShape()
	if err != nil {
		return p, err
	}
	switch {
	case p.StartTime != 0:
		// Resolved already: check.
		if p.PID == 0 {
			return p, errors.New("pid: must be set along with startTime")
		}
		st, err := procfs.ReadStat(procRoot, p.PID)
		if err != nil {
			return p, fmt.Errorf("pid: process %d: %w", p.PID, err)
		}
		if st.Start != p.StartTime {
			return p, fmt.Errorf("startTime: process %d started at %d, not %d: it is another process that reused the pid", p.PID, st.Start, p.StartTime)
		}
		if p.ProcessName != "" && st.Comm != p.ProcessName {
			return p, fmt.Errorf("processName: process %d is %q, not %q", p.PID, st.Comm, p.ProcessName)
		}
		return p, nil
	case p.PID != 0 && p.ProcessName != "":
		return p, errors.New("pid, processName: set exactly one of them, not both")
	case p.PID != 0:
		st, err := procfs.ReadStat(procRoot, p.PID)
		if err != nil {
			return p, fmt.Errorf("pid: process %d: %w", p.PID, err)
		}
		if st.State == 'Z' {
			return p, fmt.Errorf("pid: process %d has exited (zombie)", p.PID)
		}
		p.StartTime = st.Start
		return p, nil
	case p.ProcessName != "":
		pid, start, err := findByComm(procRoot, p.ProcessName, p.CommandLineContains, selfPID())
		if err != nil {
			return p, err
		}
		p.PID, p.StartTime = pid, start
		return p, nil
	default:
		return p, errors.New("pid, processName: set exactly one of them")
	}
}
