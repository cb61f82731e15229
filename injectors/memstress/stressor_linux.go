package memstress

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"faultline.dev/faultline/injectors/procfs"
)

// Tuning of the stressor.
const (
	// chunkBytes is what one mmap maps; pages are touched in it as the
	// ramp goes.
	chunkBytes = 64 << 20
	// stepBytes is the most touched at once, and pushStepBytes past the
	// target when pushing: the OOM counter is read after each.
	stepBytes     = 16 << 20
	pushStepBytes = 1 << 20
	// The stressor's Go heap is kept small: its memory is mmapped, not Go's.
	stressorGCPercent   = 20
	stressorMemoryLimit = 8 << 20
)

// Periods of the stressor.
var (
	rampTick       = 10 * time.Millisecond
	maxBurst       = 100 * time.Millisecond // of the ramp, after a stall
	holdTick       = 100 * time.Millisecond
	oomPoll        = 20 * time.Millisecond
	progressPeriod = 250 * time.Millisecond
	linePeriod     = time.Second
	watchPeriod    = 100 * time.Millisecond
	retouchPeriod  = 10 * time.Second
)

type stressorConfig struct {
	h           hierarchy
	cgroup      string // its own cgroup
	watch       string // the container's, or ""
	target      int64
	ramp        int64
	pushPast    bool
	maxBytes    int64  // where pushing stops, at the latest
	oomBefore   uint64 // OOM kills in watch before the fault
	progress    string // progress file
	oomScoreAdj string // "" to keep the inherited one
	// deadline, when set, is when it releases everything and exits by its
	// own clock: the fault ends on time even if its agent hangs.
	deadline time.Time
}

// StressorMain runs a stressor; args are those after the subcommand name,
// as the fault passes them (stressorArgs). It moves itself into
// its cgroup, reports "starting" on stdout, waits for a 'g' byte on stdin,
// then allocates at the ramp rate, touching every page, up to the target,
// and holds it until killed; with -push-past it goes on until an OOM kill
// in the watched cgroup, then releases everything and exits 0. It returns
// the exit code.
func StressorMain(args []string) int {
	c, err := parseStressorArgs(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, StressorCommand+":", err)
		return 2
	}
	if err := c.run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, StressorCommand+":", err)
		return 1
	}
	return 0
}

func parseStressorArgs(args []string) (stressorConfig, error) {
	var c stressorConfig
	fs := flag.NewFlagSet(StressorCommand, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.h.Root, "cgroup-root", "", "where the memory cgroup hierarchy is mounted")
	fs.IntVar(&c.h.Version, "cgroup-version", 0, "the hierarchy's version, 1 or 2")
	fs.StringVar(&c.cgroup, "cgroup", "", "the stressor's own cgroup, inside the hierarchy")
	fs.StringVar(&c.watch, "watch", "", "the container's cgroup, whose OOM kills and processes are watched")
	fs.Int64Var(&c.target, "target", 0, "bytes to make resident")
	fs.Int64Var(&c.ramp, "ramp", 0, "bytes per second")
	fs.BoolVar(&c.pushPast, "push-past", false, "go on past the target until an OOM kill in -watch")
	fs.Int64Var(&c.maxBytes, "max", 0, "with -push-past, the most ever allocated")
	fs.Uint64Var(&c.oomBefore, "oom-kills-before", 0, "OOM kills counted in -watch before the fault")
	fs.StringVar(&c.progress, "progress", "", "the progress file, rewritten atomically")
	fs.StringVar(&c.oomScoreAdj, "oom-score-adj", "", "oom_score_adj to set")
	var deadlineMs int64
	fs.Int64Var(&deadlineMs, "deadline-unix-ms", 0, "release everything and exit at this time (the fault's deadline), in Unix milliseconds")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if deadlineMs > 0 {
		c.deadline = time.UnixMilli(deadlineMs)
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	case c.h.Root == "" || (c.h.Version != 1 && c.h.Version != 2):
		return c, errors.New("-cgroup-root and -cgroup-version (1 or 2) are required")
	case c.cgroup == "" || c.progress == "":
		return c, errors.New("-cgroup and -progress are required")
	case c.target <= 0 || c.ramp <= 0:
		return c, errors.New("-target and -ramp must be above 0")
	case c.pushPast && (c.watch == "" || c.maxBytes < c.target):
		return c, errors.New("-push-past needs -watch and -max at least -target")
	}
	return c, nil
}

type stressor struct {
	stressorConfig
	pid    int
	start  uint64
	page   int64
	chunks [][]byte
	// touched is how much of the chunks was written, from the start.
	touched, peak int64
	phase         string
	oom           uint64 // OOM kills in watch, as last read
	out           *bufio.Writer
}

func (c stressorConfig) run(in io.Reader, out io.Writer) error {
	debug.SetGCPercent(stressorGCPercent)
	debug.SetMemoryLimit(stressorMemoryLimit)
	runtime.GOMAXPROCS(1)
	s := &stressor{stressorConfig: c, pid: os.Getpid(), page: int64(os.Getpagesize()), phase: PhaseStarting, oom: c.oomBefore, out: bufio.NewWriter(out)}
	st, err := procfs.ReadStat("/proc", s.pid)
	if err != nil {
		return err
	}
	s.start = st.Start
	// Into the cgroup before anything big is allocated, so that it is
	// charged there.
	if err := c.h.add(c.cgroup, s.pid); err != nil {
		return fmt.Errorf("joining cgroup %s: %w", c.h.dir(c.cgroup), err)
	}
	if c.oomScoreAdj != "" {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(c.oomScoreAdj), 0); err != nil {
			return fmt.Errorf("oom_score_adj %s: %w", c.oomScoreAdj, err)
		}
	}
	// Leaving when the container is gone makes sense only for a container
	// that had processes to begin with.
	watchProcs := false
	if c.watch != "" {
		pids, err := c.h.containerProcs(c.watch)
		if err != nil {
			return err
		}
		watchProcs = len(pids) > 0
	}
	if err := s.report(true); err != nil {
		return err
	}
	// The agent records this process (pid and start time) before it lets
	// it allocate: no stressor holds memory unrecorded.
	var b [1]byte
	if _, err := io.ReadFull(in, b[:]); err != nil || b[0] != 'g' {
		return fmt.Errorf("no go from the agent on stdin (%v)", err)
	}
	return s.loop(watchProcs)
}

func (s *stressor) loop(watchProcs bool) error {
	limit := s.target
	if s.pushPast {
		limit = s.maxBytes / s.page * s.page
	}
	s.phase = PhaseRamping
	var credit float64 // bytes the ramp allows now
	last := time.Now()
	var lastOOM, lastFile, lastLine, lastWatch, lastTouch time.Time
	reported := PhaseStarting
	for {
		now := time.Now()
		if !s.deadline.IsZero() && !now.Before(s.deadline) {
			return s.release(OutcomeDeadline, "the fault's deadline "+s.deadline.UTC().Format(time.RFC3339Nano)+" came, by the stressor's own clock")
		}
		if s.touched < limit {
			// The ramp's allowance, capped: a stressor slowed down (by
			// reclaim near a limit, by an OOM kill) does not catch up in
			// a burst.
			credit = min(credit+now.Sub(last).Seconds()*float64(s.ramp), float64(s.ramp)*maxBurst.Seconds()+float64(s.page))
			last = now
			for s.touched < limit && credit >= float64(s.page) {
				step := int64(stepBytes)
				if s.pushPast && s.touched >= s.target {
					step = pushStepBytes
				}
				n := min(int64(credit)/s.page*s.page, step, limit-s.touched)
				if err := s.touch(s.touched+n, limit); err != nil {
					return err
				}
				credit -= float64(n)
				if s.pushPast {
					// After every step: the room an OOM kill makes is not
					// the stressor's to take.
					lastOOM = time.Now()
					if done, err := s.oomKilled(); done || err != nil {
						return err
					}
				}
			}
			switch {
			case s.touched == limit:
				s.phase = PhaseHolding
				lastTouch = now
			case s.touched >= s.target:
				s.phase = PhasePushing
			}
		} else if now.Sub(lastTouch) >= retouchPeriod {
			// Written again now and then, so that pages reclaimed or
			// swapped out come back.
			s.retouch()
			lastTouch = now
		}
		now = time.Now()
		if s.pushPast && now.Sub(lastOOM) >= oomPoll {
			lastOOM = now
			if done, err := s.oomKilled(); done || err != nil {
				return err
			}
		}
		if watchProcs && now.Sub(lastWatch) >= watchPeriod {
			lastWatch = now
			pids, err := s.h.containerProcs(s.watch)
			if err != nil {
				return err
			}
			// A container whose processes are all gone is dead (its init
			// took the others with it), and a restarted one gets a cgroup
			// of its own: the stressor leaves at once, so that the
			// runtime can remove the dead one's.
			if len(pids) == 0 {
				return s.release(OutcomeTargetGone, fmt.Sprintf("no process left in cgroup %s", s.watch))
			}
		}
		// Every progressPeriod, and at once when the phase changes.
		if changed := s.phase != reported; changed || now.Sub(lastFile) >= progressPeriod {
			lastFile, reported = now, s.phase
			line := changed || now.Sub(lastLine) >= linePeriod
			if line {
				lastLine = now
			}
			if err := s.report(line); err != nil {
				return err
			}
		}
		if s.touched < limit {
			time.Sleep(rampTick)
		} else {
			time.Sleep(holdTick)
		}
	}
}

// oomKilled reports whether an OOM kill happened in the watched cgroup
// since the fault began; if so, it releases everything.
func (s *stressor) oomKilled() (bool, error) {
	n, err := s.h.oomKills(s.watch)
	if err != nil {
		return false, err
	}
	s.oom = n
	if n <= s.oomBefore {
		return false, nil
	}
	return true, s.release(OutcomeReleased, fmt.Sprintf("released after an OOM kill in cgroup %s", s.watch))
}

// touch writes a byte in every page up to want, mapping chunks as needed;
// no chunk goes past limit.
func (s *stressor) touch(want, limit int64) error {
	for s.touched < want {
		i, off := s.touched/chunkBytes, s.touched%chunkBytes
		if int(i) == len(s.chunks) {
			size := min(chunkBytes, limit-s.touched)
			b, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
			if err != nil {
				return fmt.Errorf("mmap %d bytes: %w", size, err)
			}
			// Base pages: with huge pages the first touch would make 2 MiB
			// resident at once, overshooting the ramp and the target.
			_ = unix.Madvise(b, unix.MADV_NOHUGEPAGE)
			s.chunks = append(s.chunks, b)
		}
		c := s.chunks[i]
		end := min(int64(len(c)), off+want-s.touched)
		for p := off; p < end; p += s.page {
			c[p] = 1
		}
		s.touched += end - off
		s.peak = max(s.peak, s.touched)
	}
	return nil
}

func (s *stressor) retouch() {
	for _, c := range s.chunks {
		for p := int64(0); p < int64(len(c)); p += s.page {
			c[p] = 1
		}
	}
}

// release unmaps everything and reports why (an Outcome*) and reason.
func (s *stressor) release(why, reason string) error {
	for _, c := range s.chunks {
		_ = unix.Munmap(c)
	}
	s.chunks, s.touched = nil, 0
	s.phase = PhaseReleased
	p := s.progressNow()
	p.ReleasedFor, p.Reason = why, reason
	return s.write(p, true)
}

func (s *stressor) report(line bool) error {
	return s.write(s.progressNow(), line)
}

func (s *stressor) progressNow() Progress {
	return Progress{
		PID: s.pid, StartTime: s.start, Phase: s.phase,
		TouchedBytes: s.touched, PeakBytes: s.peak, ResidentBytes: selfRSS(), TargetBytes: s.target,
		OOMKills: s.oom - min(s.oom, s.oomBefore), Time: time.Now().UTC(),
	}
}

func (s *stressor) write(p Progress, line bool) error {
	if err := writeJSON(s.progress, p); err != nil {
		return err
	}
	if !line {
		return nil
	}
	b, _ := json.Marshal(p)
	_, _ = s.out.Write(append(b, '\n')) // a bufio.Writer's error sticks: Flush returns it
	return s.out.Flush()
}

// selfRSS is this process's resident set (VmRSS), in bytes.
func selfRSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.ParseInt(f[1], 10, 64)
	return n * int64(os.Getpagesize())
}

// stressorArgs are the arguments (the subcommand first) that run the
// stressor of state st; most bounds a push past the target.
func stressorArgs(st State, p Params, dir string, most int64, deadline time.Time) []string {
	args := []string{
		StressorCommand,
		"-cgroup-root=" + st.CgroupRoot,
		"-cgroup-version=" + strconv.Itoa(st.CgroupVersion),
		"-cgroup=" + st.Cgroup,
		"-target=" + strconv.FormatInt(p.TargetBytes, 10),
		"-ramp=" + strconv.FormatInt(p.RampBytesPerSecond, 10),
		"-progress=" + filepath.Join(dir, progressFile),
		"-oom-kills-before=" + strconv.FormatUint(st.OOMKillsBefore, 10),
	}
	if st.Mode == ModeContainer {
		// Node mode watches nothing: its parent's OOM kills and processes
		// are the node's.
		args = append(args, "-watch="+st.Watch)
	}
	if st.PushPastLimit {
		args = append(args, "-push-past", "-max="+strconv.FormatInt(most, 10))
	}
	if !deadline.IsZero() {
		args = append(args, "-deadline-unix-ms="+strconv.FormatInt(deadline.UnixMilli(), 10))
	}
	if a := p.OOMScoreAdj; a != nil {
		args = append(args, "-oom-score-adj="+strconv.Itoa(*a))
	} else if p.Mode == ModeNode {
		args = append(args, "-oom-score-adj=1000")
	}
	return args
}
