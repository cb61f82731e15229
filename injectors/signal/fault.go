package signal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"faultline.dev/faultline/injectors"
)

// signals this fault sends, by name.
var signals = map[string]unix.Signal{"SIGTERM": unix.SIGTERM, "SIGKILL": unix.SIGKILL}

// Params are a signal fault's parameters as the agent receives them: the
// container, the signal, and the exact process to signal, found by
// FindMainProcess before the first injection and kept in the ledger.
type Params struct {
	// ContainerID, bare or with a runtime scheme (containerd://...).
	ContainerID string `json:"containerID"`
	// Signal is SIGTERM or SIGKILL.
	Signal string `json:"signal"`
	// PID of the container's main process, as this node's /proc numbers it.
	PID int `json:"pid"`
	// StartTime of that process (field 22 of /proc/PID/stat, clock ticks
	// since boot): a PID showing another start time is another process.
	StartTime uint64 `json:"startTime"`
}

// Validate checks the parameters, naming the bad field, and returns them
// with the container ID made bare.
func (p Params) Validate() (Params, error) {
	if p.ContainerID == "" {
		return p, errors.New("containerID: must be set")
	}
	id, err := BareContainerID(p.ContainerID)
	if err != nil {
		return p, err
	}
	p.ContainerID = id
	if _, ok := signals[p.Signal]; !ok {
		return p, fmt.Errorf("signal: must be SIGTERM or SIGKILL, not %q", p.Signal)
	}
	if p.PID <= 0 {
		return p, fmt.Errorf("pid: must be the positive pid of the container's main process, not %d", p.PID)
	}
	if p.StartTime == 0 {
		return p, errors.New("startTime: must be set (field 22 of /proc/PID/stat), so that a reused pid is never signalled")
	}
	return p, nil
}

// Fault signals one container's main process once.
type Fault struct {
	ID     string
	Params Params

	procRoot string
	sent     atomic.Bool
}

var (
	_ injectors.Fault = (*Fault)(nil)
	_ injectors.Once  = (*Fault)(nil)
)

// New is the family's injectors.Factory.
func New(id string, raw json.RawMessage) (injectors.Fault, error) {
	var p Params
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("signal fault parameters: %w", err)
	}
	p, err := p.Validate()
	if err != nil {
		return nil, err
	}
	return &Fault{ID: id, Params: p, procRoot: ProcRoot}, nil
}

// Once marks the fault as acting at one instant: a signal holds nothing in
// place, and an agent restarted after sending it does not send it again.
func (f *Fault) Once() {}

// Inject sends the signal to the process if it still exists. A process
// that is gone (the container exited, or its pid now belongs to another
// process) is not signalled, and that is success: retrying an injection is
// safe, since a process that already exited from the first signal is not
// signalled again. Only a process that outlived a first signal whose
// injection was then cut short (a crash between kill(2) and the ledger's
// write) is signalled twice.
func (f *Fault) Inject(context.Context) error {
	sig := signals[f.Params.Signal]
	sent, err := signal(f.procRoot, f.Params.PID, f.Params.StartTime, f.Params.ContainerID, sig)
	if err != nil {
		return fmt.Errorf("%s to the main process (pid %d) of container %s: %w", f.Params.Signal, f.Params.PID, f.Params.ContainerID, err)
	}
	if sent {
		f.sent.Store(true)
	}
	return nil
}

// Recover does nothing: a signal cannot be undone. The container restarts,
// or not, by its pod's restartPolicy.
func (f *Fault) Recover(context.Context) error { return nil }

// Verify reports true once this Fault has sent its signal, or when the
// process is gone (nothing is left to signal); false while the process
// lives and this Fault has not signalled it.
func (f *Fault) Verify(context.Context) (bool, error) {
	if f.sent.Load() {
		return true, nil
	}
	ok, err := alive(f.procRoot, f.Params.PID, f.Params.StartTime)
	return !ok && err == nil, err
}

// signal sends sig to the process (pid, start) if it is still alive and
// still in the container's cgroup, and reports whether it did.
//
// It goes through a pidfd where the kernel has them (5.3 and later): the
// pidfd is opened first and pins the process that had the pid then, so a
// start time read afterwards that matches proves the pidfd is the process
// meant, and the signal cannot reach a process that reused the pid between
// the check and the kill. Older kernels get kill(2) after the same check.
func signal(procRoot string, pid int, start uint64, containerID string, sig unix.Signal) (bool, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case errors.Is(err, unix.ESRCH):
		return false, nil
	case errors.Is(err, unix.ENOSYS):
		fd = -1
	case err != nil:
		return false, fmt.Errorf("pidfd_open: %w", err)
	default:
		defer unix.Close(fd)
	}
	ok, err := target(procRoot, pid, start, containerID)
	if err != nil || !ok {
		return false, err
	}
	if fd >= 0 {
		err = unix.PidfdSendSignal(fd, sig, nil, 0)
	} else {
		err = unix.Kill(pid, sig)
	}
	if errors.Is(err, unix.ESRCH) {
		return false, nil
	}
	return err == nil, err
}

// target reports whether (pid, start) is alive and in the container.
func target(procRoot string, pid int, start uint64, containerID string) (bool, error) {
	ok, err := alive(procRoot, pid, start)
	if err != nil || !ok {
		return false, err
	}
	cg, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		// Gone between the two reads.
		ok, aerr := alive(procRoot, pid, start)
		if aerr == nil && !ok {
			return false, nil
		}
		return false, err
	}
	return cgroupNames(cg, containerID), nil
}
