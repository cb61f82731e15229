package sandbox

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Down removes everything the sandbox made: its processes (by the PIDs it
// recorded, and any process whose command line points into its directory),
// the containers its nodes ran, its mounts, network namespaces, links and
// routes (kube-proxy's and CNI's rules live inside the nodes' namespaces and
// go with them), its cgroups and its directory. It is idempotent, and it
// works on a sandbox whose `up` was killed at any point.
func Down(c Config, progress *Progress) error {
	unlock, err := lockRoot(c.root())
	if err != nil {
		return err
	}
	defer unlock()
	// The last sandbox takes the shared root with it (the lock is held; a
	// waiting `up` or `down` notices and starts again).
	defer removeRootIfEmpty(c.root())
	defer os.Remove(c.UsersFile()) //nolint:errcheck // absent when no test shared it
	dir := c.Dir()
	st, err := LoadState(dir)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if st == nil {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			progress.Printf("sandbox %q is not up; nothing to remove", c.Name)
			return nil
		}
		// Killed before its state was written: nothing but the directory
		// can exist yet, but sweep for processes all the same.
		st = &State{Name: c.Name, Index: -1, Config: c}
	}
	var errs []error
	keep := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	// 1. Processes: the recorded components, anything carrying the
	// sandbox's marker (a component started just before a kill -9 of `up`,
	// and containerd's shims) and what stayed in the components' sessions
	// (nginx's workers, whose environment nginx overwrites). The leaders
	// come first, so that nginx's master is told to stop before its workers
	// exit and it would start new ones.
	recorded := make([]Component, 0, len(st.Components))
	for _, comp := range st.Components {
		recorded = append(recorded, comp)
	}
	swept := processesMarked(dir)
	shims := shimSockets(swept)
	procs := append(slices.Clone(recorded), swept...)
	leaders := append(slices.Clone(recorded), swept...)
	procs = append(procs, sessionMembers(leaders)...)
	survivors := stopProcesses(procs, 3*time.Second)
	// Containers are not children of anything recorded: they are found in
	// the nodes' cgroups.
	for _, cg := range st.Cgroups {
		keep(killCgroupTree(cg))
	}
	// A shim can be forked by containerd during the first round.
	survivors = append(survivors, stopProcesses(append(processesMarked(dir), sessionMembers(leaders)...), time.Second)...)
	for _, p := range survivors {
		keep(fmt.Errorf("process %d (%s) survived SIGKILL", p.PID, p.Name))
	}
	progress.Printf("processes stopped")

	// 2. Mounts under the directory: rootfs overlays, pod volumes, shm and
	// pod network namespaces.
	keep(unmountUnder(dir))

	// 3. Network: namespaces, links and the bridge (its routes go with it).
	if st.Index >= 0 {
		p := NewPlan(st.Index)
		netnsNames := st.Netns
		if entries, err := os.ReadDir(netnsDir); err == nil {
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), fmt.Sprintf("fl%d-", st.Index)) {
					netnsNames = appendOnce(netnsNames, e.Name())
				}
			}
		}
		for _, n := range netnsNames {
			keep(deleteNetns(n))
		}
		links := st.Links
		if all, err := netlink.LinkList(); err == nil {
			prefix := fmt.Sprintf("fl%d", st.Index)
			for _, l := range all {
				name := l.Attrs().Name
				// fl<index><kind><n>: the sandbox's veths.
				if strings.HasPrefix(name, prefix) && len(name) > len(prefix) && strings.ContainsRune("ir", rune(name[len(prefix)])) {
					links = appendOnce(links, name)
				}
			}
		}
		links = appendOnce(links, p.BridgeName())
		for _, l := range links {
			keep(deleteLink(l))
		}
		progress.Printf("network namespaces, links and routes removed")
	}

	// 4. cgroups, deepest first.
	for _, cg := range st.Cgroups {
		keep(removeCgroupTree(cg))
	}
	for _, sock := range shims {
		if err := os.Remove(sock); err != nil && !os.IsNotExist(err) {
			keep(err)
		}
	}
	// The shims made these; they stay if anything else (a system
	// containerd) still uses them.
	_ = unix.Rmdir("/run/containerd/s")
	_ = unix.Rmdir("/run/containerd")

	// 5. containerd's CNI cache in the machine's /var/lib/cni: the results
	// of this sandbox's networks (named fl<index>-<node>) and the loopback
	// results of its pod sandboxes.
	keep(removeCNICache(st.Index, dir))

	// 6. The directory, and the machine's sysctls and paths once no sandbox
	// with real nodes is left.
	if len(errs) == 0 {
		keep(os.RemoveAll(dir))
		if st.Index >= 0 {
			keep(markReleased(c.root(), st.Index, time.Now()))
		}
		others := false
		for _, o := range allStates(c.root()) {
			if o.Config.RealNodes > 0 {
				others = true
			}
		}
		if !others {
			keep(restoreHostState(c.root()))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("sandbox %q not fully removed (run down again): %w", c.Name, errors.Join(errs...))
	}
	progress.Printf("sandbox %q removed", c.Name)
	return nil
}

// cgroupMounts lists the mount points of every cgroup hierarchy.
func cgroupMounts() []string {
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return m.FSType != "cgroup" && m.FSType != "cgroup2", false
	})
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Mountpoint)
	}
	return out
}

// cgroupDirs returns every directory of the tree rooted at cg in every
// hierarchy, deepest first.
func cgroupDirs(cg string) []string {
	var dirs []string
	for _, mnt := range cgroupMounts() {
		root := filepath.Join(mnt, cg)
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	return dirs
}

// killCgroupTree SIGKILLs every process in the tree until it is empty.
func killCgroupTree(cg string) error {
	for round := 0; round < 50; round++ {
		found := 0
		for _, d := range cgroupDirs(cg) {
			b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					found++
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if found == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("processes remain in cgroup %s", cg)
}

func removeCgroupTree(cg string) error {
	var errs []error
	for _, d := range cgroupDirs(cg) {
		// A cgroup's last task may take a moment to leave after SIGKILL.
		var err error
		for try := 0; try < 20; try++ {
			if err = unix.Rmdir(d); err == nil || errors.Is(err, unix.ENOENT) {
				err = nil
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(dir string) error {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return err
	}
	sort.Slice(ms, func(i, j int) bool { return len(ms[i].Mountpoint) > len(ms[j].Mountpoint) })
	var errs []error
	for _, m := range ms {
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.Mountpoint, err))
		}
	}
	return errors.Join(errs...)
}

// shimSockets finds the sockets that containerd's runc shims listen on.
// containerd 1.6 names them /run/containerd/s/SHA256(address/namespace/id)
// and a shim killed with SIGKILL leaves its socket behind.
func shimSockets(procs []Component) []string {
	var out []string
	for _, p := range procs {
		if !strings.HasPrefix(filepath.Base(p.Name), "containerd-shim") {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.PID))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		flag := func(name string) string {
			for i, a := range args {
				if a == name && i+1 < len(args) {
					return args[i+1]
				}
			}
			return ""
		}
		id, ns, addr := flag("-id"), flag("-namespace"), flag("-address")
		if id == "" || ns == "" || addr == "" {
			continue
		}
		sum := sha256.Sum256([]byte(filepath.Join(addr, ns, id)))
		out = append(out, fmt.Sprintf("/run/containerd/s/%x", sum))
	}
	return out
}

const cniResults = "/var/lib/cni/results"

func removeCNICache(index int, dir string) error {
	var files []string
	if index >= 0 {
		m, _ := filepath.Glob(filepath.Join(cniResults, fmt.Sprintf("fl%d-*", index)))
		files = append(files, m...)
	}
	ids, _ := filepath.Glob(filepath.Join(dir, "nodes", "*", "containerd", "root", "io.containerd.grpc.v1.cri", "sandboxes", "*"))
	for _, id := range ids {
		files = append(files, filepath.Join(cniResults, "cni-loopback-"+filepath.Base(id)+"-lo"))
	}
	var errs []error
	for _, f := range files {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func removeRootIfEmpty(root string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !IsBookkeeping(e.Name()) {
			return
		}
	}
	_ = os.Remove(filepath.Join(root, releasedFile))
	_ = os.Remove(filepath.Join(root, ".lock"))
	_ = unix.Rmdir(root)
	_ = unix.Rmdir(filepath.Dir(root))
}
