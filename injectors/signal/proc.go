// Package signal sends a signal to a container's main process: the
// "SIGTERM during a rollout" fault. It knows nothing of Kubernetes: a
// container is its runtime ID (64 hex digits), found on the node through
// the cgroup paths of its processes, which every runtime names after it
// (…/pod<uid>/<id> with cgroupfs, …/cri-containerd-<id>.scope with systemd;
// cgroup v1 and v2 alike).
//
// The main process is the container's init: among the processes whose
// /proc/PID/cgroup names the container, the one that is pid 1 of its own
// PID namespace (the last field of NSpid in /proc/PID/status). A process is
// identified by its PID and its start time (field 22 of /proc/PID/stat), so
// that a PID reused by another process after the container's exit is never
// signalled.
package signal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"faultline.dev/faultline/injectors/procfs"
)

// ProcRoot is where the processes of the node are read from.
const ProcRoot = "/proc"

var containerIDRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// BareContainerID strips a runtime scheme (containerd://, docker://,
// cri-o://, or any other NAME://) from a container ID as the kubelet
// reports it, and checks that what is left is a full container ID: 64
// lower-case hex digits.
func BareContainerID(id string) (string, error) {
	bare := id
	if i := strings.Index(bare, "://"); i >= 0 {
		bare = bare[i+3:]
	}
	if !containerIDRE.MatchString(bare) {
		return "", fmt.Errorf("containerID: %q is not a container ID (want 64 lower-case hex digits, optionally after a scheme such as containerd://)", id)
	}
	return bare, nil
}

// FindMainProcess returns the PID and start time of the main process of
// the container with that ID (bare or with a scheme) on this node.
func FindMainProcess(containerID string) (pid int, start uint64, err error) {
	id, err := BareContainerID(containerID)
	if err != nil {
		return 0, 0, err
	}
	return findMainProcess(ProcRoot, id)
}

// candidate is a process of the container that is pid 1 of a PID namespace.
type candidate struct {
	pid   int
	depth int // how many PID namespaces deep: len(NSpid)
	start uint64
}

func findMainProcess(procRoot, id string) (int, uint64, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return 0, 0, fmt.Errorf("looking for the processes of container %s: %w", id, err)
	}
	var members []int
	var inits []candidate
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		// Processes come and go during the scan: one that is gone is skipped.
		cg, err := os.ReadFile(filepath.Join(dir, "cgroup"))
		if err != nil || !cgroupNames(cg, id) {
			continue
		}
		status, err := os.ReadFile(filepath.Join(dir, "status"))
		if err != nil {
			continue
		}
		nspid, err := parseNSpid(status)
		if err != nil {
			return 0, 0, fmt.Errorf("process %d of container %s: %w", pid, id, err)
		}
		members = append(members, pid)
		if nspid[len(nspid)-1] != 1 {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		st, err := procfs.ParseStat(stat)
		if err != nil {
			return 0, 0, fmt.Errorf("process %d of container %s: %w", pid, id, err)
		}
		if st.State == 'Z' { // exited, not yet reaped: no main process to signal
			continue
		}
		inits = append(inits, candidate{pid: pid, depth: len(nspid), start: st.Start})
	}
	if len(members) == 0 {
		return 0, 0, fmt.Errorf("container %s: no process on this node (no %s/*/cgroup path contains its ID)", id, procRoot)
	}
	if len(inits) == 0 {
		return 0, 0, fmt.Errorf("container %s: none of its processes %v is pid 1 of its PID namespace (NSpid in %s/PID/status); does its pod share one process namespace, or has its main process exited?", id, members, procRoot)
	}
	// A process of the container may start a PID namespace of its own, whose
	// pid 1 sits deeper: the container's init is the shallowest.
	sort.Slice(inits, func(i, j int) bool { return inits[i].depth < inits[j].depth })
	if len(inits) > 1 && inits[1].depth == inits[0].depth {
		var pids []int
		for _, c := range inits {
			if c.depth == inits[0].depth {
				pids = append(pids, c.pid)
			}
		}
		return 0, 0, fmt.Errorf("container %s: processes %v are each pid 1 of a PID namespace at the same depth; which one is the main process is ambiguous", id, pids)
	}
	return inits[0].pid, inits[0].start, nil
}

// cgroupNames reports whether a /proc/PID/cgroup file puts the process in
// a cgroup whose path contains the container ID, in any hierarchy. Lines
// are "hierarchy-ID:controllers:path" (v1) or "0::path" (v2).
func cgroupNames(file []byte, id string) bool {
	sc := bufio.NewScanner(bytes.NewReader(file))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 && strings.Contains(parts[2], id) {
			return true
		}
	}
	return false
}

// parseNSpid returns the NSpid field of a /proc/PID/status file: the
// process's pid in each PID namespace it belongs to, outermost first.
func parseNSpid(status []byte) ([]int, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "NSpid:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, errors.New("status: NSpid line is empty")
		}
		out := make([]int, len(fields))
		for i, f := range fields {
			n, err := strconv.Atoi(f)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("status: NSpid field %q is not a pid", f)
			}
			out[i] = n
		}
		return out, nil
	}
	return nil, errors.New("status: no NSpid line (the kernel is older than 4.1)")
}

// alive reports whether the process (pid, start) still exists and has not
// exited: a different start time is another process that reused the pid.
// A zombie counts as exited even while its other threads run (unlike in
// disklatency): the main process has exited, the end a SIGTERM is sent for.
func alive(procRoot string, pid int, start uint64) (bool, error) {
	st, err := procfs.ReadStat(procRoot, pid)
	switch {
	case errors.Is(err, procfs.ErrNoProcess):
		return false, nil
	case err != nil:
		return false, err
	}
	return st.Start == start && st.State != 'Z', nil
}
