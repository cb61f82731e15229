package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procSpec is a component to start.
type procSpec struct {
	name  string
	bin   string
	args  []string
	netns string // run inside this named network namespace (only the network)
	ports []int
	env   []string // added to the environment (Chaos Mesh is configured by it)
}

// ComponentError names a component that failed and shows its last log lines.
type ComponentError struct {
	Component string
	Log       string
	Tail      string
	Err       error
}

func (e *ComponentError) Error() string {
	return fmt.Sprintf("%s failed: %v\nlast lines of %s:\n%s", e.Component, e.Err, e.Log, e.Tail)
}

func (e *ComponentError) Unwrap() error { return e.Err }

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "  (no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// running is a started component: its exit is watched so that a wait for its
// readiness fails at once when it dies.
type running struct {
	Component
	exited chan struct{}
	err    error
}

// start launches a component detached from the caller (its own session, so
// it outlives `sandbox up`) and records its PID before anything else.
func (s *State) start(spec procSpec) (*running, error) {
	logDir := filepath.Join(s.Config.Dir(), "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(logDir, spec.name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	bin, args := spec.bin, spec.args
	if spec.netns != "" {
		// nsenter enters only the network namespace and then execs, so the
		// PID is the component's; `ip netns exec` would also make a mount
		// namespace, which would hide the kubelet's volume mounts.
		args = append([]string{"--net=" + netnsPath(spec.netns), "--", bin}, args...)
		bin = "nsenter"
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The marker lets `down` find this process and everything it starts
	// (containerd's shims inherit it) without matching command lines,
	// which a user's own `kubectl --kubeconfig DIR/...` would match too.
	cmd.Env = append(append(os.Environ(), spec.env...), markerEnv+"="+s.Config.Dir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, &ComponentError{Component: spec.name, Log: logPath, Tail: tail(logPath, 5), Err: err}
	}
	c := Component{Name: spec.name, PID: cmd.Process.Pid, Start: procStart(cmd.Process.Pid), Ports: spec.ports, Netns: spec.netns, Log: logPath, Bin: spec.bin, Args: spec.args}
	r := &running{Component: c, exited: make(chan struct{})}
	go func() { r.err = cmd.Wait(); close(r.exited) }()
	if err := s.addComponent(c); err != nil {
		return nil, err
	}
	return r, nil
}

// waitReady polls check until it succeeds, the component exits, or the
// timeout passes; failures carry the component's last log lines.
func (r *running) waitReady(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-r.exited:
			return &ComponentError{Component: r.Name, Log: r.Log, Tail: tail(r.Log, 15), Err: fmt.Errorf("exited during start: %v", r.err)}
		case <-ctx.Done():
			return &ComponentError{Component: r.Name, Log: r.Log, Tail: tail(r.Log, 15), Err: fmt.Errorf("not ready after %s: %v", timeout, last)}
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// procStart reads a process's start time in clock ticks since boot (field 22
// of /proc/PID/stat); with the PID it identifies a process uniquely.
func procStart(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces; fields start after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// alive reports whether pid is still the process that started at start.
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	// Without a recorded start time the PID cannot be told from a reused one.
	return start != 0 && procStart(pid) == start
}

// stopProcesses sends SIGTERM to each still-living process, waits up to
// grace for them to exit, and SIGKILLs the rest. Only processes whose start
// time still matches are signalled: a PID reused since is left alone. It
// returns the processes that survived even SIGKILL.
func stopProcesses(procs []Component, grace time.Duration) []Component {
	var live []Component
	for _, p := range procs {
		// An in-process `up` that failed and cleans up after itself.
		if p.PID == os.Getpid() {
			continue
		}
		if alive(p.PID, p.Start) {
			_ = syscall.Kill(p.PID, syscall.SIGTERM)
			live = append(live, p)
		}
	}
	deadline := time.Now().Add(grace)
	for len(live) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		live = stillAlive(live)
	}
	for _, p := range live {
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
	}
	deadline = time.Now().Add(5 * time.Second)
	for len(live) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		live = stillAlive(live)
	}
	return live
}

func stillAlive(procs []Component) []Component {
	var out []Component
	for _, p := range procs {
		if alive(p.PID, p.Start) && !zombie(p.PID) {
			out = append(out, p)
		}
	}
	return out
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && len(b) > i+2 && b[i+2] == 'Z'
}

// markerEnv is set in the environment of every process the sandbox starts.
const markerEnv = "FAULTLINE_SANDBOX_DIR"

// processesMarked finds the processes whose environment carries the
// sandbox's marker: its components and what they started (containerd's
// shims), even when `up` was killed before it could record a PID. nginx
// writes its process title over its environment, so the ingress's master
// is known by its title instead, which names its configuration (and its
// workers by their session: see sessionMembers).
func processesMarked(dir string) []Component {
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	needle := []byte("\x00" + markerEnv + "=" + dir + "\x00")
	nginxTitle := []byte("nginx: master process ")
	nginxConf := []byte(" -c " + newIngressLayout(dir).conf())
	var out []Component
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if len(cmdline) == 0 {
			continue // a zombie or a kernel thread
		}
		environ, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		ours := err == nil && bytes.Contains(append([]byte{0}, environ...), needle)
		if !ours && !(bytes.HasPrefix(cmdline, nginxTitle) && bytes.Contains(cmdline, nginxConf)) {
			continue
		}
		out = append(out, Component{Name: string(bytes.SplitN(cmdline, []byte{0}, 2)[0]), PID: pid, Start: procStart(pid)})
	}
	return out
}

// procStat reads a process's session ID and start time from /proc/PID/stat.
func procStat(pid int) (sid int, start uint64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, false
	}
	sid, _ = strconv.Atoi(f[3])
	start, _ = strconv.ParseUint(f[19], 10, 64)
	return sid, start, true
}

// sessionMembers finds the processes in the sessions that the components
// lead (start makes each one a session leader): what they forked and kept,
// such as nginx's workers. The marker does not find those: nginx writes its
// process title over its environment. And they outlive a master killed with
// SIGKILL, still in its session. A member started before its leader, or
// after a reused PID's new process, is someone else's.
func sessionMembers(comps []Component) []Component {
	leaders := map[int]Component{}
	for _, c := range comps {
		if c.Name != upComponent && c.PID > 0 && c.Start != 0 {
			leaders[c.PID] = c
		}
	}
	if len(leaders) == 0 {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var out []Component
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		sid, start, ok := procStat(pid)
		leader, led := leaders[sid]
		if !ok || !led || pid == sid || start < leader.Start {
			continue
		}
		if now := procStart(sid); now != 0 && now != leader.Start && start >= now {
			continue // the leader's PID was reused by a session leader since
		}
		out = append(out, Component{Name: fmt.Sprintf("%s (session of %s)", procComm(pid), leader.Name), PID: pid, Start: start})
	}
	return out
}

func procComm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

var errNotRoot = errors.New("faultline sandbox must run as root: it creates network namespaces, links, routes and cgroups, and runs containerd and the kubelet (try: sudo)")

// Kill sends sig to a component of a running sandbox (tests use it to
// crash faultline's controller or an agent with SIGKILL).
func Kill(c Config, name string, sig syscall.Signal) error {
	st, err := Status(c)
	if err != nil {
		return err
	}
	comp, ok := st.Components[name]
	if !ok {
		return fmt.Errorf("sandbox %q has no component %q", c.Name, name)
	}
	if !alive(comp.PID, comp.Start) {
		return fmt.Errorf("component %s (pid %d) is not running", name, comp.PID)
	}
	return syscall.Kill(comp.PID, sig)
}

// Restart starts a component again with the arguments it was first started
// with, after it died or was killed.
func Restart(c Config, name string) (Component, error) {
	unlock, err := lockRoot(c.root())
	if err != nil {
		return Component{}, err
	}
	defer unlock()
	st, err := LoadState(c.Dir())
	if err != nil {
		return Component{}, err
	}
	comp, ok := st.Components[name]
	if !ok || comp.Bin == "" {
		return Component{}, fmt.Errorf("sandbox %q has no restartable component %q", c.Name, name)
	}
	// A killed process may linger a moment, and as a zombie until reaped.
	for wait := time.Now().Add(5 * time.Second); alive(comp.PID, comp.Start) && !zombie(comp.PID); {
		if time.Now().After(wait) {
			return Component{}, fmt.Errorf("component %s is still running (pid %d)", name, comp.PID)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// nginx's workers outlive a master killed with SIGKILL and keep its
	// port, so a new master could not listen: they go first. (Not so for
	// every component: containerd's shims, in its session too, are meant to
	// outlive a containerd restart.)
	if name == IngressComponent {
		if left := stopProcesses(sessionMembers([]Component{comp}), 3*time.Second); len(left) > 0 {
			return Component{}, fmt.Errorf("component %s: process %d (%s) of its session survived SIGKILL", name, left[0].PID, left[0].Name)
		}
	}
	r, err := st.start(procSpec{name: name, bin: comp.Bin, args: comp.Args, netns: comp.Netns, ports: comp.Ports})
	if err != nil {
		return Component{}, err
	}
	return r.Component, nil
}
