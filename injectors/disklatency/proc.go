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
)

// ProcRoot is where the processes of the node are read from.
const ProcRoot = "/proc"

// ErrNoProcess is returned (wrapped) for a process that does not exist.
var ErrNoProcess = errors.New("no such process")

func selfPID() int { return os.Getpid() }

// stat is what is needed of /proc/PID/stat.
type stat struct {
	comm  string // field 2, without the parentheses
	state byte   // field 3: R, S, D, Z, ...
	ppid  int    // field 4
	start uint64 // field 22: start time in clock ticks since boot
}

// parseStat reads a /proc/PID/stat line. The command name (field 2) is in
// parentheses and may itself hold spaces and parentheses, so fields are
// counted from the last ')'.
func parseStat(b []byte) (stat, error) {
	s := strings.TrimSpace(string(b))
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return stat{}, fmt.Errorf("stat: no command name in %q", s)
	}
	fields := strings.Fields(s[end+1:]) // fields[0] is field 3
	if len(fields) < 20 {
		return stat{}, fmt.Errorf("stat: %d fields after the command name, want at least 20", len(fields))
	}
	if len(fields[0]) != 1 {
		return stat{}, fmt.Errorf("stat: state (field 3) %q is not one letter", fields[0])
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return stat{}, fmt.Errorf("stat: ppid (field 4) %q: %w", fields[1], err)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return stat{}, fmt.Errorf("stat: start time (field 22) %q: %w", fields[19], err)
	}
	return stat{comm: s[open+1 : end], state: fields[0][0], ppid: ppid, start: start}, nil
}

// readStat reads the stat of a process (or, with "PID/task/TID", of a
// thread); ErrNoProcess when there is none.
func readStat(procRoot string, pid int) (stat, error) {
	return readStatPath(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
}

func readStatPath(path string) (stat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return stat{}, ErrNoProcess
		}
		return stat{}, err
	}
	return parseStat(b)
}

// alive reports whether the process (pid, start) still exists and has not
// exited: a different start time is another process that reused the pid. A
// leader that exited alone (a zombie with live threads) still counts.
func alive(procRoot string, pid int, start uint64) (bool, error) {
	st, err := readStat(procRoot, pid)
	switch {
	case errors.Is(err, ErrNoProcess):
		return false, nil
	case err != nil:
		return false, err
	case st.start != start:
		return false, nil
	case st.state == 'Z':
		tids, err := taskIDs(procRoot, pid)
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
		st, err := readStat(procRoot, pid)
		if err != nil || st.comm != name || st.state == 'Z' {
			continue
		}
		if cmdline != "" {
			b, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "cmdline"))
			if err != nil || !strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), cmdline) {
				continue
			}
		}
		found = append(found, match{pid, st.start})
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

// taskIDs lists the threads of a process.
func taskIDs(procRoot string, pid int) ([]int, error) {
	entries, err := os.ReadDir(filepath.Join(procRoot, strconv.Itoa(pid), "task"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return nil, ErrNoProcess
		}
		return nil, err
	}
	tids := make([]int, 0, len(entries))
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
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
			return 0, ErrNoProcess
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
	tids, err := taskIDs(procRoot, pid)
	if err != nil {
		return nil, err
	}
	out := make(map[int]int, len(tids))
	for _, tid := range tids {
		tr, err := tracerOf(procRoot, pid, tid)
		if errors.Is(err, ErrNoProcess) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[tid] = tr
	}
	if len(out) == 0 {
		return nil, ErrNoProcess
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
