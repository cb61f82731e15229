package memstress

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Phases of a stressor, as its progress reports them.
const (
	PhaseStarting = "starting" // in its cgroup, waiting for the agent's go
	PhaseRamping  = "ramping"  // allocating up to the target
	PhasePushing  = "pushing"  // past the target, until an OOM kill (pushPastLimit)
	PhaseHolding  = "holding"  // holding what it allocated
	PhaseReleased = "released" // released everything and exited by itself
)

// Outcomes of a stressor that ended without Recover.
const (
	OutcomeOOMKilled  = "oom-killed"         // the kernel OOM-killed the stressor
	OutcomeReleased   = "released-after-oom" // another process was OOM-killed; the stressor released
	OutcomeTargetGone = "target-gone"        // the container's processes all exited; the stressor left
	OutcomeExited     = "exited"             // it failed or was killed otherwise
	OutcomeDeadline   = "deadline"           // it released everything at the fault's deadline, by its own clock
)

// File names in a fault's state directory.
const (
	stateFile    = "state.json"
	progressFile = "progress.json"
)

// State is what a fault records of itself in its state directory, so that
// an agent restarted with or without its ledger finds the stressor (by pid
// and start time) and the cgroup it made.
type State struct {
	ID   string `json:"id"`
	Mode string `json:"mode"`
	// The hierarchy and the cgroups, as paths inside it.
	CgroupVersion int    `json:"cgroupVersion"`
	CgroupRoot    string `json:"cgroupRoot"`
	Cgroup        string `json:"cgroup"`          // the fault's own
	Watch         string `json:"watch,omitempty"` // the container's (container mode)
	PushPastLimit bool   `json:"pushPastLimit,omitempty"`
	TargetBytes   int64  `json:"targetBytes"`
	// OOMKillsBefore counts the OOM kills in the container's subtree at the
	// first injection.
	OOMKillsBefore uint64 `json:"oomKillsBefore"`
	// The stressor; PID 0 before the first one started.
	PID       int       `json:"pid,omitempty"`
	StartTime uint64    `json:"startTime,omitempty"`
	Started   time.Time `json:"started,omitzero"`
	// Outcome of a stressor that ended by itself or was killed by the
	// kernel (Outcome* constants), with a line of detail, as the agent that
	// reaped it saw it.
	Outcome       string `json:"outcome,omitempty"`
	OutcomeDetail string `json:"outcomeDetail,omitempty"`
	// What the reaping agent saw of it: the OOM kills in Watch since the
	// first injection, and the most the stressor's cgroup held.
	OOMKillsSeen uint64 `json:"oomKillsSeen,omitempty"`
	PeakBytes    int64  `json:"peakBytes,omitempty"`
	// MadeStateDir is set when the fault made StateDir itself.
	MadeStateDir bool `json:"madeStateDir,omitempty"`
}

// Progress is what the stressor reports, on a line of its stdout about once
// a second and in its progress file (rewritten atomically).
type Progress struct {
	PID           int    `json:"pid"`
	StartTime     uint64 `json:"startTime"`
	Phase         string `json:"phase"`
	TouchedBytes  int64  `json:"touchedBytes"`  // allocated and written, page by page
	PeakBytes     int64  `json:"peakBytes"`     // the most it ever touched
	ResidentBytes int64  `json:"residentBytes"` // VmRSS of the stressor
	TargetBytes   int64  `json:"targetBytes"`
	OOMKills      uint64 `json:"oomKills"` // in the watched cgroup since injection
	// Why it released everything (phase released): ReleasedFor is
	// OutcomeReleased (an OOM kill in the watched cgroup) or
	// OutcomeTargetGone (no process left there), Reason a line.
	ReleasedFor string    `json:"releasedFor,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Time        time.Time `json:"time"`
}

// writeJSON replaces file with v atomically: a reader sees the old or the
// new content, never a part.
func writeJSON(file string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// readJSON reads file into v; fs.ErrNotExist when there is none.
func readJSON(file string, v any) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

// readState reads the state of the fault whose directory is dir; ok false
// when there is none.
func readState(dir string) (State, bool, error) {
	var st State
	err := readJSON(filepath.Join(dir, stateFile), &st)
	if errors.Is(err, fs.ErrNotExist) {
		return st, false, nil
	}
	return st, err == nil, err
}

func readProgress(dir string) (Progress, bool) {
	var p Progress
	err := readJSON(filepath.Join(dir, progressFile), &p)
	return p, err == nil
}
