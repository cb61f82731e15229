// Package procfs reads a process as /proc shows it: the fields of
// /proc/PID/stat that the injectors need to tell a process from another
// that reused its PID, and the threads of a process. It is shared so that
// the injectors parse stat lines, and report a missing process, one way.
package procfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrNoProcess is returned for a process that does not exist, or that
// exited while its files were read; callers wrap it with the PID they asked
// about, so it is not wrapped here with the path.
var ErrNoProcess = errors.New("no such process")

// Stat is what is needed of /proc/PID/stat.
type Stat struct {
	Comm  string // field 2, without the parentheses
	State byte   // field 3: R, S, D, Z, ...
	PPID  int    // field 4
	Start uint64 // field 22: start time in clock ticks since boot
}

// ParseStat reads a /proc/PID/stat line. The command name (field 2) is in
// parentheses and may itself hold spaces and parentheses, so fields are
// counted from the last ')'.
func ParseStat(b []byte) (Stat, error) {
	s := strings.TrimSpace(string(b))
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return Stat{}, fmt.Errorf("stat: no command name in %q", s)
	}
	fields := strings.Fields(s[end+1:]) // fields[0] is field 3
	if len(fields) < 20 {
		return Stat{}, fmt.Errorf("stat: %d fields after the command name, want at least 20", len(fields))
	}
	if len(fields[0]) != 1 {
		return Stat{}, fmt.Errorf("stat: state (field 3) %q is not one letter", fields[0])
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return Stat{}, fmt.Errorf("stat: ppid (field 4) %q: %w", fields[1], err)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return Stat{}, fmt.Errorf("stat: start time (field 22) %q: %w", fields[19], err)
	}
	return Stat{Comm: s[open+1 : end], State: fields[0][0], PPID: ppid, Start: start}, nil
}

// ReadStat reads the stat of process pid under procRoot (normally "/proc");
// ErrNoProcess when there is none.
func ReadStat(procRoot string, pid int) (Stat, error) {
	return ReadStatPath(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
}

// ReadStatPath reads a stat file by its path, such as
// /proc/PID/task/TID/stat for a thread; ErrNoProcess when there is none.
func ReadStatPath(path string) (Stat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Stat{}, noProcess(err)
	}
	return ParseStat(b)
}

// TaskIDs lists the threads of a process; ErrNoProcess when there is none.
func TaskIDs(procRoot string, pid int) ([]int, error) {
	entries, err := os.ReadDir(filepath.Join(procRoot, strconv.Itoa(pid), "task"))
	if err != nil {
		return nil, noProcess(err)
	}
	tids := make([]int, 0, len(entries))
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// noProcess turns the errors of reading the /proc files of a process that
// is gone into ErrNoProcess: a process that exits while its files are read
// makes the read fail with ESRCH rather than ENOENT.
func noProcess(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return ErrNoProcess
	}
	return err
}
