package memstress

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Where the hierarchies are mounted by default.
const (
	DefaultV2Root = "/sys/fs/cgroup"
	DefaultV1Root = "/sys/fs/cgroup/memory"
)

// unlimited is what a limit at or above counts as no limit: cgroup v1 shows
// none as PAGE_COUNTER_MAX pages (9223372036854771712 bytes).
const unlimited = 1 << 62

// hierarchy is the memory cgroup hierarchy of the node: where it is
// mounted, and its version. Cgroups are named by their path inside it, as
// /proc/PID/cgroup shows them.
type hierarchy struct {
	Version int    // 1 or 2
	Root    string // mount point
}

// detectHierarchy finds the memory hierarchy: at root when set, else
// cgroup v2 at /sys/fs/cgroup or the v1 memory hierarchy at
// /sys/fs/cgroup/memory.
func detectHierarchy(root string) (hierarchy, error) {
	if root != "" {
		h, err := probeHierarchy(root)
		if err != nil {
			return h, fmt.Errorf("cgroupRoot: %w", err)
		}
		return h, nil
	}
	if h, err := probeHierarchy(DefaultV2Root); err == nil && h.Version == 2 {
		return h, nil
	}
	h, err := probeHierarchy(DefaultV1Root)
	if err != nil {
		return h, fmt.Errorf("cgroupRoot: no cgroup v2 hierarchy at %s, and %w", DefaultV2Root, err)
	}
	return h, nil
}

func probeHierarchy(dir string) (hierarchy, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return hierarchy{}, fmt.Errorf("%s: %w", dir, err)
	}
	switch st.Type {
	case unix.CGROUP2_SUPER_MAGIC:
		return hierarchy{Version: 2, Root: dir}, nil
	case unix.CGROUP_SUPER_MAGIC:
		if _, err := os.Stat(filepath.Join(dir, "memory.usage_in_bytes")); err != nil {
			return hierarchy{}, fmt.Errorf("%s is a cgroup v1 hierarchy without the memory controller", dir)
		}
		// containerd's memory controller finds the hierarchy as
		// PARENT/memory.
		if filepath.Base(dir) != "memory" {
			return hierarchy{}, fmt.Errorf("%s: a cgroup v1 memory hierarchy must be mounted on a directory named memory", dir)
		}
		return hierarchy{Version: 1, Root: dir}, nil
	}
	return hierarchy{}, fmt.Errorf("%s is not a cgroup filesystem", dir)
}

// dir is the directory of cgroup rel.
func (h hierarchy) dir(rel string) string { return filepath.Join(h.Root, rel) }

func (h hierarchy) exists(rel string) bool {
	fi, err := os.Stat(h.dir(rel))
	return err == nil && fi.IsDir()
}

func (h hierarchy) v1Subsystems() ([]cgroup1.Subsystem, error) {
	return []cgroup1.Subsystem{cgroup1.NewMemory(filepath.Dir(h.Root), cgroup1.OptionalSwap(), cgroup1.IgnoreModules("kmem", "kmem.tcp"))}, nil
}

func (h hierarchy) v1(rel string) (cgroup1.Cgroup, error) {
	return cgroup1.Load(cgroup1.StaticPath(rel), cgroup1.WithHierarchy(h.v1Subsystems))
}

func (h hierarchy) v2(rel string) (*cgroup2.Manager, error) {
	return cgroup2.Load(rel, cgroup2.WithMountpoint(h.Root))
}

// create makes cgroup rel (its parent must exist), with a memory limit when
// limit > 0. An existing cgroup is kept, its limit set again.
func (h hierarchy) create(rel string, limit int64) error {
	parent := path.Dir(rel)
	if !h.exists(parent) {
		return fmt.Errorf("cgroup %s: %w", parent, fs.ErrNotExist)
	}
	switch h.Version {
	case 1:
		res := &specs.LinuxResources{}
		if limit > 0 {
			res.Memory = &specs.LinuxMemory{Limit: &limit}
		}
		_, err := cgroup1.New(cgroup1.StaticPath(rel), res, cgroup1.WithHierarchy(h.v1Subsystems))
		return err
	default:
		if limit > 0 {
			// Enabling the memory controller down to the parent is a no-op
			// where it is on already, as under /kubepods.
			_, err := cgroup2.NewManager(h.Root, rel, &cgroup2.Resources{Memory: &cgroup2.Memory{Max: &limit}})
			return err
		}
		// No controller is enabled: a container's cgroup holds processes,
		// so it may enable none for its children, whose memory is then
		// charged to it.
		pm, err := h.v2(parent)
		if err != nil {
			return err
		}
		_, err = pm.NewChild(path.Base(rel), nil)
		return err
	}
}

// add moves process pid into cgroup rel.
func (h hierarchy) add(rel string, pid int) error {
	switch h.Version {
	case 1:
		cg, err := h.v1(rel)
		if err != nil {
			return err
		}
		return cg.AddProc(uint64(pid))
	default:
		m, err := h.v2(rel)
		if err != nil {
			return err
		}
		return m.AddProc(uint64(pid))
	}
}

// memStat is what is read of a cgroup's memory.
type memStat struct {
	Usage    uint64 // bytes charged now
	Peak     uint64 // most ever charged (0: unknown)
	OOMKills uint64 // processes of this very cgroup (v1) or its subtree (v2) OOM-killed
	Limit    uint64 // its own limit (unlimited and above: none)
	Known    bool   // false when the memory controller is not enabled for it
}

// stat reads cgroup rel's memory. A cgroup v2 group without the memory
// controller enabled has none of it (Known false).
func (h hierarchy) stat(rel string) (memStat, error) {
	switch h.Version {
	case 1:
		cg, err := h.v1(rel)
		if err != nil {
			return memStat{}, err
		}
		m, err := cg.Stat()
		if err != nil {
			return memStat{}, err
		}
		s := memStat{Known: true}
		if m.Memory != nil && m.Memory.Usage != nil {
			s.Usage, s.Peak, s.Limit = m.Memory.Usage.Usage, m.Memory.Usage.Max, m.Memory.Usage.Limit
		}
		if m.MemoryOomControl != nil {
			s.OOMKills = m.MemoryOomControl.OomKill
		}
		return s, nil
	default:
		if _, err := os.Stat(filepath.Join(h.dir(rel), "memory.current")); err != nil {
			if errors.Is(err, fs.ErrNotExist) && h.exists(rel) {
				return memStat{}, nil
			}
			return memStat{}, err
		}
		m, err := h.v2(rel)
		if err != nil {
			return memStat{}, err
		}
		ms, err := m.StatFiltered(cgroup2.StatMemory | cgroup2.StatMemoryEvents)
		if err != nil {
			return memStat{}, err
		}
		s := memStat{Known: true, Usage: ms.Memory.Usage, Peak: ms.Memory.MaxUsage, Limit: ms.Memory.UsageLimit}
		if ms.MemoryEvents != nil {
			s.OOMKills = ms.MemoryEvents.OomKill
		}
		return s, nil
	}
}

// oomKills counts the OOM kills of processes anywhere in cgroup rel's
// subtree. Cgroup v1 counts a kill in the victim's own cgroup only (its
// memory.oom_control), so the subtree's counters are summed; cgroup v2's
// memory.events counts the subtree's already. A cgroup v2 group without
// the memory controller is charged to, and counted in, its nearest
// ancestor that has it, which the container's cgroup is.
func (h hierarchy) oomKills(rel string) (uint64, error) {
	if h.Version == 2 {
		b, err := os.ReadFile(filepath.Join(h.dir(rel), "memory.events"))
		if errors.Is(err, fs.ErrNotExist) && h.exists(rel) {
			return 0, nil // no memory controller: no OOM kill is counted here
		}
		if err != nil {
			return 0, err
		}
		return kvField(b, "oom_kill")
	}
	var sum uint64
	err := filepath.WalkDir(h.dir(rel), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != h.dir(rel) {
				return nil // a cgroup removed during the walk
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "memory.oom_control"))
		if errors.Is(err, fs.ErrNotExist) && p != h.dir(rel) {
			return fs.SkipDir
		}
		if err != nil {
			return err
		}
		n, err := kvField(b, "oom_kill")
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		sum += n
		return nil
	})
	return sum, err
}

// kvField returns the value of key in a "key value" per line file.
func kvField(b []byte, key string) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s line", key)
}

// effectiveLimit is the lowest memory limit on cgroup rel and its
// ancestors, and whether there is one.
func (h hierarchy) effectiveLimit(rel string) (uint64, bool, error) {
	if h.Version == 1 {
		b, err := os.ReadFile(filepath.Join(h.dir(rel), "memory.stat"))
		if err != nil {
			return 0, false, err
		}
		l, err := kvField(b, "hierarchical_memory_limit")
		if err != nil {
			return 0, false, fmt.Errorf("%s/memory.stat: %w", h.dir(rel), err)
		}
		return l, l < unlimited, nil
	}
	var low uint64
	found := false
	for c := rel; ; c = path.Dir(c) {
		b, err := os.ReadFile(filepath.Join(h.dir(c), "memory.max"))
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return 0, false, err
		default:
			if s := strings.TrimSpace(string(b)); s != "max" {
				l, err := strconv.ParseUint(s, 10, 64)
				if err != nil {
					return 0, false, fmt.Errorf("%s/memory.max: %w", h.dir(c), err)
				}
				if !found || l < low {
					low, found = l, true
				}
			}
		}
		if c == "/" {
			return low, found, nil
		}
	}
}

// useHierarchy reports whether a v1 cgroup charges its children's memory
// to itself (memory.use_hierarchy 1; always so on cgroup v2).
func (h hierarchy) useHierarchy(rel string) (bool, error) {
	if h.Version == 2 {
		return true, nil
	}
	b, err := os.ReadFile(filepath.Join(h.dir(rel), "memory.use_hierarchy"))
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(b)) == "1", nil
}

// containerProcs lists the processes of cgroup rel's subtree, leaving out
// every stressor's cgroup: the stressors of this fault and of any other
// fault on the same container are not the container, and one must not keep
// another in place after the container is gone.
func (h hierarchy) containerProcs(rel string) ([]int, error) {
	var out []int
	err := filepath.WalkDir(h.dir(rel), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != h.dir(rel) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != h.dir(rel) && strings.HasPrefix(d.Name(), cgroupPrefix) {
			return fs.SkipDir
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if errors.Is(err, fs.ErrNotExist) && p != h.dir(rel) {
			return fs.SkipDir
		}
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				out = append(out, pid)
			}
		}
		return nil
	})
	return out, err
}

// remove deletes cgroup rel, which must hold no process, retrying for up
// to wait while it is busy (a process that just died may still be leaving
// it). A cgroup already gone, or whose parent is, is fine.
func (h hierarchy) remove(rel string, wait time.Duration) error {
	end := time.Now().Add(wait)
	for {
		if !h.exists(rel) {
			return nil
		}
		var err error
		switch h.Version {
		case 1:
			var cg cgroup1.Cgroup
			if cg, err = h.v1(rel); err == nil {
				err = cg.Delete()
			}
		default:
			var m *cgroup2.Manager
			if m, err = h.v2(rel); err == nil {
				err = m.Delete()
			}
		}
		if err == nil || !h.exists(rel) {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("removing cgroup %s: %w", h.dir(rel), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
