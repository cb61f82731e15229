//go:build sandbox

package sandbox_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"faultline.dev/faultline/deploy"
	"faultline.dev/faultline/sandbox"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

func execCommand(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// machine is what a sandbox can leave on the machine, read with the
// system's own tools rather than with the sandbox's code.
type machine struct {
	netns, links, routes, nftTables, iptables, mounts, cgroups, shimSockets, sysctls, cniResults, listeners []string
}

func lines(t *testing.T, name string, args ...string) []string {
	t.Helper()
	out, err := runCmd(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	var l []string
	for _, s := range strings.Split(out, "\n") {
		if s = strings.TrimSpace(s); s != "" && !strings.HasPrefix(s, "#") {
			l = append(l, s)
		}
	}
	sort.Strings(l)
	return l
}

func dirNames(path string) []string {
	es, _ := os.ReadDir(path)
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func readMachine(t *testing.T) machine {
	t.Helper()
	var m machine
	m.netns = dirNames("/run/netns")
	for _, l := range lines(t, "ip", "-o", "link", "show") {
		if f := strings.Fields(l); len(f) > 1 {
			m.links = append(m.links, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	m.routes = lines(t, "ip", "route", "show", "table", "all")
	m.nftTables = lines(t, "nft", "list", "tables")
	for _, tbl := range []string{"filter", "nat", "mangle"} {
		for _, l := range lines(t, "iptables-save", "-t", tbl) {
			if !strings.HasPrefix(l, ":") { // counters on chain lines change on their own
				m.iptables = append(m.iptables, l)
			}
		}
	}
	for _, l := range lines(t, "cat", "/proc/self/mountinfo") {
		if f := strings.Fields(l); len(f) > 4 {
			m.mounts = append(m.mounts, f[4])
		}
	}
	for _, h := range dirNames("/sys/fs/cgroup") {
		for _, d := range dirNames("/sys/fs/cgroup/" + h) {
			m.cgroups = append(m.cgroups, h+"/"+d)
		}
	}
	// A process that outlived down (an nginx worker) keeps its socket
	// bound to the sandbox's bridge address after the bridge is gone.
	for _, l := range lines(t, "ss", "-Hltn") {
		if f := strings.Fields(l); len(f) > 3 {
			m.listeners = append(m.listeners, f[3])
		}
	}
	m.shimSockets = dirNames("/run/containerd/s")
	m.cniResults = dirNames("/var/lib/cni/results")
	for _, k := range []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops"} {
		b, _ := os.ReadFile("/proc/sys/" + k)
		m.sysctls = append(m.sysctls, k+"="+strings.TrimSpace(string(b)))
	}
	return m
}

// added lists what is in after but not in before and matches keep.
func added(before, after []string, keep func(string) bool) []string {
	had := map[string]bool{}
	for _, s := range before {
		had[s] = true
	}
	var out []string
	for _, s := range after {
		if !had[s] && keep(s) {
			out = append(out, s)
		}
	}
	return out
}

// assertNothingLeft compares the machine with how it was before the sandbox
// came up. Another sandbox (the shared one) may change the machine at the
// same time, so only what belongs to this one by name, index or directory
// counts, except for the host's netfilter rules, which no sandbox may add.
func assertNothingLeft(t *testing.T, before machine, c sandbox.Config, index int, pids []int) {
	t.Helper()
	after := readMachine(t)
	p := sandbox.NewPlan(index)
	super := p.Super.Addr().As4()
	prefix := fmt.Sprintf("%d.%d.", super[0], super[1])
	mine := func(s string) bool {
		return strings.Contains(s, c.Dir()) || strings.Contains(s, prefix) || strings.Contains(s, p.BridgeName()) ||
			strings.HasPrefix(s, fmt.Sprintf("fl%d", index)) || strings.Contains(s, "faultline-"+c.Name+"-")
	}
	anything := func(string) bool { return true }
	checks := []struct {
		what          string
		before, after []string
		keep          func(string) bool
	}{
		{"network namespaces", before.netns, after.netns, mine},
		{"links", before.links, after.links, mine},
		{"routes", before.routes, after.routes, mine},
		{"host nftables tables", before.nftTables, after.nftTables, anything},
		{"host iptables rules", before.iptables, after.iptables, anything},
		{"mounts", before.mounts, after.mounts, mine},
		{"cgroups", before.cgroups, after.cgroups, mine},
		{"sysctls", before.sysctls, after.sysctls, anything},
		// Loopback results are named by pod sandbox ID only; the network's
		// results carry the node's namespace name.
		{"CNI results", before.cniResults, after.cniResults, mine},
		{"listening sockets", before.listeners, after.listeners, mine},
	}
	for _, ck := range checks {
		if left := added(ck.before, ck.after, ck.keep); len(left) > 0 {
			t.Errorf("left behind: %s: %v", ck.what, left)
		}
	}
	// Shim sockets are named by a hash, so they cannot be told apart from
	// the shared sandbox's; a socket nobody listens on is a leftover.
	for _, sock := range after.shimSockets {
		conn, err := net.Dial("unix", "/run/containerd/s/"+sock)
		if err != nil {
			t.Errorf("left behind: containerd shim socket %s (%v)", sock, err)
			continue
		}
		conn.Close()
	}
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err == nil && !strings.Contains(string(b), ") Z ") {
			t.Errorf("left behind: process %d is still running: %s", pid, b)
		}
	}
	// Every component leads a session of its own: what it forked and did
	// not detach stays in it, even orphaned. nginx's workers are such: nginx
	// overwrites its environment, so they carry no sandbox marker, and their
	// command line names no directory.
	for _, pid := range pids {
		for _, m := range sessionOf(pid) {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", m))
			what := "process"
			if strings.TrimSpace(string(comm)) == "nginx" {
				what = "nginx process (of the ingress)"
			}
			t.Errorf("left behind: %s %d (%s) in the session of component pid %d", what, m, strings.TrimSpace(string(comm)), pid)
		}
	}
	if out, _ := execCommand("pgrep", "-af", c.Dir()+"/"); strings.TrimSpace(out) != "" {
		t.Errorf("left behind: processes mentioning %s:\n%s", c.Dir(), out)
	}
	if _, err := os.Stat(c.Dir()); !os.IsNotExist(err) {
		t.Errorf("left behind: directory %s", c.Dir())
	}
}

// sessionOf lists the live processes, other than its leader, of a session
// (zombies are dead: orphans reparented to a PID 1 that never reaps stay so).
func sessionOf(sid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == sid {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		i := strings.LastIndexByte(string(b), ')')
		if err != nil || i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 3 && f[0] != "Z" && f[3] == strconv.Itoa(sid) {
			out = append(out, pid)
		}
	}
	return out
}

func smallConfig(t *testing.T, name string) sandbox.Config {
	bins, err := sandboxtest.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	c := sandbox.DefaultConfig()
	c.Name, c.SharedKwokNodes, c.IsolatedKwokNodes, c.RealNodes, c.BinDir = name, 1, 1, 1, bins
	// nginx starts in a moment, and its workers are what down most easily
	// leaves behind.
	c.Ingress = true
	return c
}

func recordedPIDs(t *testing.T, c sandbox.Config) (int, []int) {
	st, err := sandbox.Status(c)
	if err != nil {
		return -1, nil
	}
	var pids []int
	for _, comp := range st.Components {
		pids = append(pids, comp.PID)
	}
	return st.Index, pids
}

func TestDownRemovesEverythingUpMade(t *testing.T) {
	sandboxtest.RequireRoot(t)
	sandboxtest.Hold(t) // the machine, shared
	c := smallConfig(t, "lifecycle")
	_ = sandbox.Down(c, nil) // a leftover of an earlier, killed run
	before := readMachine(t)
	ctx := context.Background()
	st, err := sandbox.Up(ctx, c, sandbox.NewProgress(os.Stderr), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sandbox.Down(c, nil) })

	// Real pods, so that there are containers, shims, mounts, pod network
	// namespaces, CNI and kube-proxy rules for down to remove.
	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := deploy.Files.ReadFile("examples/demo-app.yaml")
	if err := deploy.Apply(ctx, cfg, manifest); err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	sandboxtest.WaitFor(t, 2*time.Minute, "demo pods to run", func() bool {
		d, err := cs.AppsV1().Deployments("demo").Get(ctx, "demo-app", metav1.GetOptions{})
		return err == nil && d.Status.AvailableReplicas == *d.Spec.Replicas
	})
	index, pids := recordedPIDs(t, c)
	// kube-proxy's and CNI's rules live in the node's namespace: make sure
	// they were really made, or removing the namespace proves nothing.
	nodeNS := sandbox.NewPlan(index).NetnsName(sandbox.RealNodeName(0))
	if out, err := runCmd("ip", "netns", "exec", nodeNS, "nft", "list", "tables"); err != nil || !strings.Contains(out, "kube-proxy") {
		t.Fatalf("kube-proxy's nftables table is missing in %s: %v %s", nodeNS, err, out)
	}
	if mid := readMachine(t); len(added(before.mounts, mid.mounts, func(s string) bool { return strings.Contains(s, c.Dir()) })) == 0 {
		t.Fatal("the sandbox made no mounts: this test would not prove that down removes them")
	}

	// Someone else's `ip netns add` while the sandbox is up: the first one
	// on a machine bind-mounts /run/netns over itself, which would hide the
	// sandbox's namespace mounts from down, unless up made it a mount first.
	probe := fmt.Sprintf("fl-probe-%d", os.Getpid())
	if out, err := runCmd("ip", "netns", "add", probe); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	if out, err := runCmd("ip", "netns", "del", probe); err != nil {
		t.Fatalf("ip netns del: %v %s", err, out)
	}

	start := time.Now()
	if err := sandbox.Down(c, sandbox.NewProgress(os.Stderr)); err != nil {
		t.Fatal(err)
	}
	t.Logf("down took %s", time.Since(start).Round(time.Millisecond))
	assertNothingLeft(t, before, c, index, pids)
	// The test processes' lock file goes too, even with nothing else left.
	if err := os.WriteFile(c.UsersFile(), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := sandbox.Down(c, nil); err != nil {
		t.Errorf("a second down must succeed and do nothing: %v", err)
	}
	if _, err := os.Stat(c.UsersFile()); !os.IsNotExist(err) {
		t.Errorf("left behind: %s (%v)", c.UsersFile(), err)
	}
	// With no other sandbox, not even the shared root may stay.
	others, _ := os.ReadDir(sandbox.DefaultRoot)
	if !slices.ContainsFunc(others, func(e os.DirEntry) bool { return !sandbox.IsBookkeeping(e.Name()) }) {
		if _, err := os.Stat(sandbox.DefaultRoot); !os.IsNotExist(err) {
			t.Errorf("left behind: %s", sandbox.DefaultRoot)
		}
	}
}

// The tests that bring a sandbox of their own up and down, then check
// what it left, run beside other sandboxes: what is a sandbox's own is
// told by its index, and up takes the free index released longest ago, so
// one coming up beside them does not take the index they just freed (and
// its addresses) before the check (CI once: "left behind: listening
// sockets: [10.202.0.1:46359]").

// up is killed with SIGKILL right after each write of its state in turn:
// after each thing it records and before it makes the next. Every time,
// down must leave nothing.
func TestDownAfterUpWasKilledHalfwayRemovesEverything(t *testing.T) {
	sandboxtest.RequireRoot(t)
	sandboxtest.Hold(t) // the machine, shared
	bins, err := sandboxtest.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; ; n++ {
		c := smallConfig(t, fmt.Sprintf("killed-%d", n))
		_ = sandbox.Down(c, nil)
		before := readMachine(t)
		cmd := exec.Command(filepath.Join(bins, "faultline"), "sandbox", "up", "--name", c.Name,
			"--kwok-nodes=1", "--isolated-nodes=1", "--real-nodes=1", "--ingress", "--bin-dir", bins)
		cmd.Env = append(os.Environ(), fmt.Sprintf("FAULTLINE_SANDBOX_DIE_AFTER_SAVES=%d", n))
		out, err := cmd.CombinedOutput()
		if err == nil {
			// up got through every step: each was a kill point already.
			t.Logf("up saves its state %d times; killed after each of the first %d", n-1, n-1)
			if err := sandbox.Down(c, nil); err != nil {
				t.Fatal(err)
			}
			if n < 10 {
				t.Fatalf("up finished after only %d saves: the kill points cover too little", n-1)
			}
			return
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("up did not die by SIGKILL after save %d: %v\n%s", n, err, out)
		}
		index, pids := recordedPIDs(t, c)
		if err := sandbox.Down(c, nil); err != nil {
			t.Fatalf("down after a kill at save %d: %v", n, err)
		}
		t.Run(fmt.Sprintf("killed after save %d", n), func(t *testing.T) {
			if index < 0 {
				// Killed before the state named an index: nothing but the
				// directory may exist, and down removed it.
				index = 0
			}
			assertNothingLeft(t, before, c, index, pids)
		})
		if n > 100 {
			t.Fatal("up never finished")
		}
	}
}

func TestAThousandSharedKwokNodesBecomeReady(t *testing.T) {
	sandboxtest.RequireRoot(t)
	sandboxtest.Hold(t) // the machine, shared
	c := smallConfig(t, "scale")
	c.SharedKwokNodes, c.IsolatedKwokNodes, c.RealNodes = 1000, 0, 0
	_ = sandbox.Down(c, nil)
	start := time.Now()
	st, err := sandbox.Up(context.Background(), c, sandbox.NewProgress(os.Stderr), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sandbox.Down(c, nil); err != nil {
			t.Error(err)
		}
	})
	// Up returns only once every node is Ready; count them independently.
	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	list, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ready := 0
	for i := range list.Items {
		if sandbox.NodeReady(&list.Items[i]) {
			ready++
		}
	}
	if ready != 1000 {
		t.Fatalf("%d of %d nodes Ready, want 1000", ready, len(list.Items))
	}
	t.Logf("1,000 kwok nodes Ready %.1fs after up began; kube-apiserver RSS %d MiB, etcd RSS %d MiB",
		time.Since(start).Seconds(), sandbox.RSSKiB(st.Components["kube-apiserver"].PID)/1024, sandbox.RSSKiB(st.Components["etcd"].PID)/1024)
}
