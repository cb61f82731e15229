package memstress

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Modes of a fault.
const (
	// ModeContainer stresses one container: the fault's cgroup is a child
	// of the container's memory cgroup, so that what the stressor holds
	// counts against the container's limit.
	ModeContainer = "container"
	// ModeNode stresses the node: the fault's cgroup is made under a parent
	// (such as /kubepods), with a limit of the target plus a small headroom,
	// so that the kubelet sees node memory pressure and evicts pods.
	ModeNode = "node"
)

// Limits of the parameters.
const (
	// MaxTargetBytes bounds a target (1 TiB) so that no sum overflows.
	MaxTargetBytes = 1 << 40
	// cgroupPrefix starts the name of every cgroup a fault makes.
	cgroupPrefix = "faultline-memstress-"
	// maxIDLen keeps the cgroup name (prefix + ID) under NAME_MAX.
	maxIDLen = 200
)

// Params are a memory-stress fault's parameters as the agent receives them.
type Params struct {
	// Mode is "container" or "node".
	Mode string `json:"mode"`
	// Cgroup is, in container mode, the target container's memory cgroup,
	// as /proc/PID/cgroup of one of its processes shows it to the agent
	// (e.g. "/kubepods/burstable/podX/abc"); in node mode the parent under
	// which the fault makes its own cgroup (e.g. "/kubepods"; "" or "/" for
	// the root).
	Cgroup string `json:"cgroup,omitempty"`
	// TargetBytes is the memory the stressor makes resident (above 0, at
	// most 1 TiB; rounded up to whole pages).
	TargetBytes int64 `json:"targetBytes"`
	// RampBytesPerSecond is how fast it gets there (above 0).
	RampBytesPerSecond int64 `json:"rampBytesPerSecond"`
	// PushPastLimit (container mode only) keeps allocating past the target
	// until an OOM kill happens in the container's cgroup, then releases
	// everything. Node mode refuses it: it stops at its target, so that the
	// kubelet evicts rather than the kernel OOM-kills.
	PushPastLimit bool `json:"pushPastLimit,omitempty"`
	// OOMScoreAdj, when set, is written to the stressor's
	// /proc/PID/oom_score_adj before it allocates (-1000 to 1000; without
	// CAP_SYS_RESOURCE it can only be raised above the agent's). Unset, a
	// container-mode stressor keeps the agent's and a node-mode one takes
	// 1000, so that a node OOM kills it before any workload.
	OOMScoreAdj *int `json:"oomScoreAdj,omitempty"`
	// StateDir is where the fault keeps its state (a directory of its own,
	// memstress-ID, under it); the agent fills it.
	StateDir string `json:"stateDir"`
	// Stressor is the executable that runs the stressor as its
	// "stress-memory" subcommand (StressorMain); default: the agent's own
	// executable.
	Stressor string `json:"stressor,omitempty"`
	// CgroupRoot overrides where the memory cgroup hierarchy is mounted: a
	// cgroup v1 memory hierarchy (a directory named memory, such as
	// /sys/fs/cgroup/memory) or a cgroup v2 one. Default: /sys/fs/cgroup
	// when it is cgroup v2, else /sys/fs/cgroup/memory.
	CgroupRoot string `json:"cgroupRoot,omitempty"`
}

// Validate checks the parameters, naming the bad field, and returns them in
// canonical form: node mode's parent "" becomes "/", paths are cleaned, and
// TargetBytes is rounded up to whole pages.
func (p Params) Validate() (Params, error) {
	switch p.Mode {
	case ModeContainer, ModeNode:
	case "":
		return p, fmt.Errorf("mode: must be set, to %q or %q", ModeContainer, ModeNode)
	default:
		return p, fmt.Errorf("mode: %q is not %q or %q", p.Mode, ModeContainer, ModeNode)
	}
	c, err := cleanCgroup(p.Cgroup, p.Mode)
	if err != nil {
		return p, err
	}
	p.Cgroup = c
	if p.TargetBytes <= 0 || p.TargetBytes > MaxTargetBytes {
		return p, fmt.Errorf("targetBytes: must be above 0 and at most %d (1 TiB), got %d", int64(MaxTargetBytes), p.TargetBytes)
	}
	page := int64(os.Getpagesize())
	p.TargetBytes = (p.TargetBytes + page - 1) / page * page
	if p.RampBytesPerSecond <= 0 {
		return p, fmt.Errorf("rampBytesPerSecond: must be above 0, got %d: a stressor that does not ramp never holds anything", p.RampBytesPerSecond)
	}
	if p.PushPastLimit && p.Mode == ModeNode {
		return p, errors.New("pushPastLimit: only in container mode: node mode stops at its target so that the kubelet evicts pods, not the kernel OOM-kills them")
	}
	if a := p.OOMScoreAdj; a != nil && (*a < -1000 || *a > 1000) {
		return p, fmt.Errorf("oomScoreAdj: must be between -1000 and 1000, got %d", *a)
	}
	if p.StateDir == "" {
		return p, errors.New("stateDir: must be set (the agent fills it)")
	}
	if !filepath.IsAbs(p.StateDir) {
		return p, fmt.Errorf("stateDir: must be an absolute path, got %q", p.StateDir)
	}
	p.StateDir = filepath.Clean(p.StateDir)
	if p.Stressor != "" {
		if !filepath.IsAbs(p.Stressor) {
			return p, fmt.Errorf("stressor: must be an absolute path, got %q", p.Stressor)
		}
		p.Stressor = filepath.Clean(p.Stressor)
	}
	if p.CgroupRoot != "" {
		if !filepath.IsAbs(p.CgroupRoot) {
			return p, fmt.Errorf("cgroupRoot: must be an absolute path, got %q", p.CgroupRoot)
		}
		p.CgroupRoot = filepath.Clean(p.CgroupRoot)
	}
	return p, nil
}

// cleanCgroup checks a cgroup path as /proc/PID/cgroup shows it.
func cleanCgroup(c, mode string) (string, error) {
	if mode == ModeNode && c == "" {
		return "/", nil
	}
	if c == "" {
		return "", errors.New("cgroup: must be set to the container's memory cgroup, as /proc/PID/cgroup shows it (e.g. /kubepods/burstable/podX/abc)")
	}
	if !strings.HasPrefix(c, "/") {
		return "", fmt.Errorf("cgroup: %q must start with /, as in /proc/PID/cgroup", c)
	}
	if strings.HasPrefix(c, "/sys/fs/cgroup") {
		return "", fmt.Errorf("cgroup: %q is a filesystem path: give the path inside the hierarchy, as /proc/PID/cgroup shows it (set cgroupRoot for the mount)", c)
	}
	for _, e := range strings.Split(c, "/") {
		if e == "." || e == ".." {
			return "", fmt.Errorf("cgroup: %q holds a %q element", c, e)
		}
	}
	c = path.Clean(c)
	for _, e := range strings.Split(c, "/") {
		if strings.HasPrefix(e, cgroupPrefix) {
			return "", fmt.Errorf("cgroup: %q is under a memory-stress fault's own cgroup %q", c, e)
		}
	}
	if mode == ModeContainer && c == "/" {
		return "", errors.New("cgroup: the root cgroup is no container's (use node mode to stress the node)")
	}
	return c, nil
}

// checkID checks a fault ID, which names the fault's cgroup and state
// directory: it must be a file name of letters, digits, '.', '_' and '-'.
func checkID(id string) error {
	if id == "" || len(id) > maxIDLen || id[0] == '.' {
		return fmt.Errorf("id: %q must be 1 to %d characters, not starting with '.'", id, maxIDLen)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("id: %q may hold only letters, digits, '.', '_' and '-'", id)
		}
	}
	return nil
}

// CgroupName is the name of the cgroup a fault makes.
func CgroupName(id string) string { return cgroupPrefix + id }

// ownCgroup is the path of the fault's cgroup in the hierarchy: a child of
// the container's cgroup, or of node mode's parent.
func ownCgroup(id string, p Params) string {
	return path.Join(p.Cgroup, CgroupName(id))
}

// stateDirName is the name of a fault's own directory under StateDir.
func stateDirName(id string) string { return "memstress-" + id }

// headroom is how far above its target a node-mode cgroup's limit is: the
// stressor's own allocations made after it joined the cgroup (its page
// tables, 1/512 of what it maps, and a few MiB of Go heap and stacks), with
// a margin.
func headroom(target int64) int64 { return 16<<20 + target/256 }
