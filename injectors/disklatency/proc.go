package disklatency

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"faultline.dev/faultline/injectors/procfs"
)

// ProcRoot is where the processes of the node are read from.
const ProcRoot = "/proc"

func selfPID() int { return os.Getpid() }

// alive reports whether the process (pid, start) still exists and has not
// exited: a different start time is another process that reused the pid. A
// leader that exited alone (a zombie with live threads) still counts: its
// threads still make the disk calls being slowed down.
func alive(procRoot string, pid int, start uint64) (bool, error) {
	st, err := procfs.ReadStat(procRoot, pid)
	switch {
	case errors.Is(err, procfs.ErrNoProcess):
		return false, nil
	case err != nil:
		return false, err
	case st.Start != start:
		return false, nil
	case st.State == 'Z':
		tids, err := procfs.TaskIDs(procRoot, pid)
		return err == nil && len(tids) > 1, nil
	}
	return true, nil
}

// findByComm finds the one process, other than self, whose comm is name;
// zombies do not count.
func findByComm(procRoot, name, cmdline string, self int) (int, uint64, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return 0, 0, fmt.Errorf("processName: looking for %q: %w", name, err)
	}
	type match struct {
		pid   int
		start uint64
	}
	var found []match
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 || pid == self {
			continue
		}
		// Processes come and go during the scan: one that is gone is skipped.
		st, err := procfs.ReadStat(procRoot, pid)
		if err != nil || st.Comm != name || st.State == 'Z' {
			continue
		}
		if cmdline != "" {
			b, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "cmdline"))
			if err != nil || !strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), cmdline) {
				continue
			}
		}
		found = append(found, match{pid, st.Start})
	}
	switch len(found) {
	case 0:
		if cmdline != "" {
			return 0, 0, fmt.Errorf("processName, commandLineContains: no process is named %q with %q in its command line", name, cmdline)
		}
		return 0, 0, fmt.Errorf("processName: no process is named %q (comm in %s/PID/stat)", name, procRoot)
	case 1:
		return found[0].pid, found[0].start, nil
	}
	pids := make([]int, len(found))
	for i, m := range found {
		pids[i] = m.pid
	}
	slices.Sort(pids)
	return 0, 0, fmt.Errorf("processName: %d processes are named %q (pids %v); set commandLineContains (or pid) to choose one", len(pids), name, pids)
}

// statusField returns a numeric field (TracerPid, Tgid) of a
// /proc/PID/status file.
func statusField(status []byte, field string) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(rest))
		if err != nil {
			return 0, fmt.Errorf("status: %s %q: %w", field, strings.TrimSpace(rest), err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("status: no %s line", field)
}

// parseTracerPid returns the TracerPid field of a /proc/PID/status file.
func parseTracerPid(status []byte) (int, error) { return statusField(status, "TracerPid") }

// tracerOf returns the process that traces the thread tid of process pid
// (0: nobody). TracerPid names the tracing thread, the one that attached:
// it is mapped to its thread group, the tracer process.
func tracerOf(procRoot string, pid, tid int) (int, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "task", strconv.Itoa(tid), "status"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return 0, procfs.ErrNoProcess
		}
		return 0, err
	}
	tr, err := parseTracerPid(b)
	if err != nil || tr == 0 {
		return tr, err
	}
	// A tracer gone since is reported by its thread's ID.
	if tb, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(tr), "status")); err == nil {
		if tgid, err := statusField(tb, "Tgid"); err == nil {
			return tgid, nil
		}
	}
	return tr, nil
}

// Tracers maps every thread of process pid to the process tracing it (0 for
// none).
// Threads that exit during the scan are left out.
func Tracers(pid int) (map[int]int, error) {
	return tracers(ProcRoot, pid)
}

func tracers(procRoot string, pid int) (map[int]int, error) {
	tids, err := procfs.TaskIDs(procRoot, pid)
	if err != nil {
		return nil, err
	}
	out := make(map[int]int, len(tids))
	for _, tid := range tids {
		tr, err := tracerOf(procRoot, pid, tid)
		if errors.Is(err, procfs.ErrNoProcess) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[tid] = tr
	}
	if len(out) == 0 {
		return nil, procfs.ErrNoProcess
	}
	return out, nil
}

// underPrefix reports whether path is prefix or a path under it (prefix is
// clean and absolute).
func underPrefix(path, prefix string) bool {
	if prefix == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}
