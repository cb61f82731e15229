// Package memstress makes memory scarce for a container, or for a node, the
// way a memory-hungry neighbour does: a stressor process allocates
// anonymous memory at a given rate, touching every page so that it is
// resident, up to a target, and holds it.
//
// The stressor runs in a cgroup of the fault's own, faultline-memstress-ID.
// In container mode it is a child of the container's memory cgroup: its
// charges count against the container's limit (cgroup v1 with
// use_hierarchy, or v2, where a child without the memory controller is
// charged to its parent), and a memory cgroup OOM picks its victim in the
// whole subtree, the stressor included. With PushPastLimit the stressor
// goes on past its target until an OOM kill happens in the container, then
// releases everything and exits at once: a live child cgroup would keep
// the runtime from removing a dead container's. In node mode the cgroup is
// made under a parent (/kubepods) with a limit of the target plus a small
// headroom: the node runs short, so that the kubelet evicts, but the
// stressor cannot run away.
//
// The stressor is faultline's own code (StressorMain), run as a child of
// the agent with PR_SET_PDEATHSIG SIGKILL: it dies with the agent, even
// with a kill -9. It is found again by the pid and start time recorded in
// the fault's state file, never by name.
package memstress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"faultline.dev/faultline/injectors"
)

// StressorCommand is the subcommand of the agent's executable that runs a
// stressor: the agent's main must call StressorMain(os.Args[2:]) when
// os.Args[1] is it, before anything else.
const StressorCommand = "stress-memory"

// Fault makes a container's (or the node's) memory scarce: a stressor
// process in a cgroup of the fault's own makes the target resident.
type Fault struct {
	ID     string
	Params Params

	// deadline, when set, is when its stressor exits by its own clock.
	deadline time.Time
}

var (
	_ injectors.Reporter = (*Fault)(nil)
	_ injectors.Bounded  = (*Fault)(nil)
)

// Until is the fault whose stressor releases everything and exits at
// deadline by its own clock, even if its agent hangs. (It dies with its
// agent already: the agent's death kills it.)
func (f *Fault) Until(deadline time.Time) injectors.Fault {
	g := *f
	g.deadline = deadline
	return &g
}

// New is the family's injectors.Factory.
func New(id string, raw json.RawMessage) (injectors.Fault, error) {
	var p Params
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("memory stress parameters: %w", err)
	}
	return NewFault(id, p)
}

// NewFault builds a fault; an empty Stressor becomes this executable.
func NewFault(id string, p Params) (*Fault, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	p, err := p.Validate()
	if err != nil {
		return nil, err
	}
	if p.Stressor == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("stressor: this executable: %w", err)
		}
		p.Stressor = exe
	}
	return &Fault{ID: id, Params: p}, nil
}

// Dir is the fault's own directory under StateDir: its state and its
// stressor's progress files.
func (f *Fault) Dir() string { return filepath.Join(f.Params.StateDir, stateDirName(f.ID)) }

// ErrTargetGone is returned (wrapped) when the target container's cgroup
// is gone, or its processes all exited.
var ErrTargetGone = errors.New("the target container is gone")

// ErrStressorOOMKilled is returned (wrapped) by Inject for a stop-mode
// fault whose stressor the kernel OOM-killed: starting another would only
// OOM again, so none is.
var ErrStressorOOMKilled = errors.New("the stressor was OOM-killed")

// Effect is the stressor's status in one line (injectors.Reporter), "" when
// there is none.
func (f *Fault) Effect(context.Context) string {
	s, err := f.Status()
	if err != nil || !s.Injected {
		return ""
	}
	return s.String()
}
