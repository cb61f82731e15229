//go:build sandbox

package sandbox_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"faultline.dev/faultline/deploy"
	"faultline.dev/faultline/sandbox"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

func TestEveryNodeIsReadyAndTheDemoAppAnswersThroughItsClusterIP(t *testing.T) {
	env := sandboxtest.Get(t)
	ctx := context.Background()

	nodes, err := env.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ready := map[string]bool{}
	for i := range nodes.Items {
		ready[nodes.Items[i].Name] = sandbox.NodeReady(&nodes.Items[i])
	}
	kinds := map[string]int{}
	for _, n := range env.State.Nodes {
		kinds[n.Kind]++
		if !ready[n.Name] {
			t.Errorf("node %s (%s) is not Ready", n.Name, n.Kind)
		}
	}
	c := env.State.Config
	if kinds[sandbox.NodeKwok] != c.SharedKwokNodes || kinds[sandbox.NodeIsolated] != c.IsolatedKwokNodes || kinds[sandbox.NodeReal] != c.RealNodes {
		t.Errorf("nodes by kind = %v, want %d kwok, %d isolated, %d real", kinds, c.SharedKwokNodes, c.IsolatedKwokNodes, c.RealNodes)
	}

	// The demo app, in a namespace of this test's own.
	const ns = "sandbox-smoke"
	manifest, err := deploy.Files.ReadFile("examples/demo-app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	manifest = []byte(strings.ReplaceAll(string(manifest), "namespace: demo", "namespace: "+ns))
	manifest = []byte(strings.Replace(string(manifest), "name: demo\n", "name: "+ns+"\n", 1))
	if err := deploy.Apply(ctx, env.RESTConfig, manifest); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })

	var d *appsv1.Deployment
	sandboxtest.WaitFor(t, 2*time.Minute, "the demo app's Deployment to be Available", func() bool {
		d, err = env.Client.AppsV1().Deployments(ns).Get(ctx, "demo-app", metav1.GetOptions{})
		return err == nil && d.Status.AvailableReplicas == *d.Spec.Replicas
	})
	pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=demo-app"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if !strings.HasPrefix(p.Spec.NodeName, "real-") || p.Status.Phase != corev1.PodRunning {
			t.Errorf("pod %s is %s on %q, want Running on a real node", p.Name, p.Status.Phase, p.Spec.NodeName)
		}
		if ip, err := netip.ParseAddr(p.Status.PodIP); err != nil || !env.Plan.ClusterCIDR().Contains(ip) {
			t.Errorf("pod %s has IP %q, outside the cluster CIDR %s", p.Name, p.Status.PodIP, env.Plan.ClusterCIDR())
		}
	}
	svc, err := env.Client.CoreV1().Services(ns).Get(ctx, "demo-app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var body string
	sandboxtest.WaitFor(t, 30*time.Second, "an answer through the ClusterIP "+svc.Spec.ClusterIP, func() bool {
		body, err = get("http://" + svc.Spec.ClusterIP + "/")
		return err == nil
	})
	if !strings.HasPrefix(body, "hello from demo-app-") {
		t.Errorf("body through the ClusterIP = %q, want the demo app's greeting", body)
	}
}

// A ClusterIP nothing programmed must stay on the sandbox's bridge rather
// than follow the default route off the machine.
func TestUnprogrammedSandboxAddressesRouteToTheSandboxBridge(t *testing.T) {
	env := sandboxtest.Get(t)
	super := env.Plan.Super.Addr().As4()
	for _, a := range []string{
		fmt.Sprintf("%d.%d.31.250", super[0], super[1]),  // an unused ClusterIP
		fmt.Sprintf("%d.%d.200.7", super[0], super[1]),   // a simulated pod
		fmt.Sprintf("%d.%d.0.250", super[0], super[1]),   // an unused link address
		fmt.Sprintf("%d.%d.255.254", super[0], super[1]), // the end of the range
	} {
		out, err := runCmd("ip", "route", "get", a)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "dev "+env.Plan.BridgeName()) {
			t.Errorf("ip route get %s = %q, want dev %s", a, strings.TrimSpace(out), env.Plan.BridgeName())
		}
	}
}

func TestCuttingAnIsolatedNodeFromTheAPIServerMakesItUnreachable(t *testing.T) {
	node := sandbox.IsolatedKwokNodeName(0)
	sandboxtest.Parallel(t, sandboxtest.Alone(sandboxtest.Node(node)), sandboxtest.Shared(sandboxtest.ControlPlane))
	env := sandboxtest.Get(t)
	ctx := context.Background()
	u, err := url.Parse(env.State.Server)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	api := netip.MustParseAddr(u.Hostname())
	const grace = 20 * time.Second // fast timings
	if env.State.Config.Timings != sandbox.TimingsFast {
		t.Fatalf("the shared sandbox runs %s timings; this test needs fast ones (grace %s)", env.State.Config.Timings, grace)
	}

	sandboxtest.WaitFor(t, time.Minute, node+" to be Ready before the cut", func() bool {
		n, err := env.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		return err == nil && sandbox.NodeReady(n) && len(unreachableTaints(n)) == 0
	})
	drop := dropToward(t, env.Plan.NetnsName(node), api, uint16(port))
	cut := time.Now()
	// A bound, not a speed target: the grace counts from the last
	// heartbeat, then the node controller's pass and the taints follow,
	// each later on a machine busy with the package's other sandboxes (CI
	// once took more than 30 s). The time taken is logged.
	sandboxtest.WaitFor(t, grace+40*time.Second, node+" to be NotReady with both unreachable taints", func() bool {
		n, err := env.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		return err == nil && !sandbox.NodeReady(n) && len(unreachableTaints(n)) == 2
	})
	t.Logf("%s NotReady and tainted %.1fs after the cut (grace %s)", node, time.Since(cut).Seconds(), grace)

	drop()
	healed := time.Now()
	sandboxtest.WaitFor(t, 45*time.Second, node+" to be Ready again", func() bool {
		n, err := env.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		return err == nil && sandbox.NodeReady(n)
	})
	t.Logf("%s Ready %.1fs after the rule was removed", node, time.Since(healed).Seconds())
}

func unreachableTaints(n *corev1.Node) []corev1.Taint {
	var out []corev1.Taint
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeUnreachable && (t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute) {
			out = append(out, t)
		}
	}
	return out
}

// dropToward adds, in the named network namespace, a table of its own that
// drops TCP toward dst:port, and returns the function that deletes it.
func dropToward(t *testing.T, netnsName string, dst netip.Addr, port uint16) func() {
	t.Helper()
	ns, err := netns.GetFromName(netnsName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	table := conn.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "faultline-test-partition"})
	chain := conn.AddChain(&nftables.Chain{Name: "out", Table: table, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter})
	ip := dst.As4()
	conn.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ip[:]},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := conn.Flush(); err != nil {
		t.Fatalf("add drop rule in %s: %v", netnsName, err)
	}
	removed := false
	remove := func() {
		if removed {
			return
		}
		removed = true
		conn.DelTable(table)
		if err := conn.Flush(); err != nil {
			t.Errorf("remove drop rule in %s: %v", netnsName, err)
		}
	}
	t.Cleanup(remove)
	return remove
}

func get(u string) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", u, resp.Status)
	}
	return string(b), err
}

func runCmd(name string, args ...string) (string, error) {
	out, err := execCommand(name, args...)
	if err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return out, nil
}

// The Kubernetes components are one multi-call binary linked under each
// name, and every one of them, kubectl too, is the pinned version.
func TestTheComponentsAreOneBinaryAtThePinnedVersion(t *testing.T) {
	sandboxtest.Parallel(t, sandboxtest.Shared(sandboxtest.ControlPlane))
	env := sandboxtest.Get(t)
	dir := sandbox.ToolsDir()
	for _, name := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl"} {
		if target, err := os.Readlink(filepath.Join(dir, name)); err != nil || target != "kube" {
			t.Errorf("%s is not a link to the multi-call binary kube: %q %v", name, target, err)
		}
		args := []string{"--version"}
		if name == "kubectl" {
			args = []string{"version", "--client"}
		}
		out, err := exec.Command(filepath.Join(dir, name), args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), sandbox.KubernetesVersion) {
			t.Errorf("%s %v: %v, want %s:\n%s", name, args, err, sandbox.KubernetesVersion, out)
		}
	}
	out, code := sandboxtest.Kubectl(t, env, "version")
	if code != 0 || !strings.Contains(out, "Server Version: "+sandbox.KubernetesVersion) {
		t.Errorf("kubectl version (exit %d), want the server at %s:\n%s", code, sandbox.KubernetesVersion, out)
	}
}
