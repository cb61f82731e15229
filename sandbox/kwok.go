package sandbox

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Labels and taints that the sandbox puts on its nodes.
const (
	// LabelNodeKind is kwok, isolated or real.
	LabelNodeKind = "faultline.dev/sandbox-node"
	// kwok's own convention: pods must tolerate this taint to land on a
	// simulated node, so real workloads never do by accident.
	kwokTaintKey = "kwok.x-k8s.io/node"
)

// kwokNode returns the Node object that kwok will then keep alive.
func kwokNode(name, kind string, addr netip.Addr) *corev1.Node {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
				LabelNodeKind:            kind,
			},
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
		},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: kwokTaintKey, Value: "fake", Effect: corev1.TaintEffectNoSchedule}}},
		Status: corev1.NodeStatus{
			Capacity: capacity, Allocatable: capacity,
			NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "kwok-" + KwokVersion, OperatingSystem: "linux", Architecture: "amd64"},
		},
	}
	if addr.IsValid() {
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: addr.String()}}
	}
	return n
}

// createNodes creates nodes with a few workers; an existing node is kept.
func createNodes(ctx context.Context, cs kubernetes.Interface, nodes []*corev1.Node) error {
	work := make(chan *corev1.Node)
	errs := make(chan error, len(nodes))
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				_, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
				if err != nil && !apierrors.IsAlreadyExists(err) {
					errs <- fmt.Errorf("create node %s: %w", n.Name, err)
				}
			}
		}()
	}
	for _, n := range nodes {
		work <- n
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

// startKwok starts the shared kwok process (host network) and one kwok per
// isolated node, inside that node's namespace with its own link to the API
// server.
func (s *State) startKwok(ctx context.Context, p Plan, cp *controlPlane, cs kubernetes.Interface) error {
	dir := s.Config.Dir()
	kubeconfig, err := cp.kubeconfigFor(dir, cp.ids.kwok)
	if err != nil {
		return err
	}
	var nodes []*corev1.Node
	if n := s.Config.SharedKwokNodes; n > 0 {
		port, err := freePort(loopback)
		if err != nil {
			return err
		}
		if _, err := s.start(procSpec{name: "kwok", bin: tool("kwok"), ports: []int{port}, args: []string{
			"--kubeconfig=" + kubeconfig,
			"--manage-all-nodes=false",
			"--manage-nodes-with-label-selector=" + LabelNodeKind + "=" + NodeKwok,
			"--cidr=" + p.SharedKwokPodCIDR().String(),
			"--node-lease-duration-seconds=40",
			"--server-address=127.0.0.1:" + strconv.Itoa(port),
		}}); err != nil {
			return err
		}
		for i := range n {
			nodes = append(nodes, kwokNode(SharedKwokNodeName(i), NodeKwok, netip.Addr{}))
			s.Nodes = append(s.Nodes, NodeInfo{Name: SharedKwokNodeName(i), Kind: NodeKwok})
		}
	}
	for k := range s.Config.IsolatedKwokNodes {
		name := IsolatedKwokNodeName(k)
		nsName := p.NetnsName(name)
		addr := p.IsolatedNodeAddr(k)
		if err := s.setupNodeNet(p, nodeNet{
			netns: nsName, hostVeth: p.HostVeth('i', k), addr: addr,
			routes: map[netip.Prefix]netip.Addr{p.Super: p.BridgeAddr()},
		}); err != nil {
			return err
		}
		if _, err := s.start(procSpec{name: "kwok-" + name, bin: tool("kwok"), netns: nsName, ports: []int{10247}, args: []string{
			"--kubeconfig=" + kubeconfig,
			"--manage-single-node=" + name,
			"--cidr=" + p.IsolatedPodCIDR(k).String(),
			"--node-ip=" + addr.String(),
			// A short lease renewed every 2 s: NotReady then comes within a
			// few seconds of the grace period after a cut, as the node-loss
			// timeline is measured against it. Shared nodes keep 40 s.
			"--node-lease-duration-seconds=8",
			"--server-address=" + addr.String() + ":10247",
		}}); err != nil {
			return err
		}
		nodes = append(nodes, kwokNode(name, NodeIsolated, addr))
		s.Nodes = append(s.Nodes, NodeInfo{Name: name, Kind: NodeIsolated, Addr: addr.String(), Netns: nsName})
	}
	if len(nodes) > 0 {
		// kwok leaves pods not Ready after their node comes back; this
		// component reports them Ready again, as a kubelet would.
		if _, err := s.start(procSpec{name: "kwok-pod-readiness", bin: s.faultlineBinary(), args: []string{
			"sandbox", "kwok-pod-readiness", "--kubeconfig=" + kubeconfig,
		}}); err != nil {
			return err
		}
	}
	if err := s.update(func(*State) {}); err != nil {
		return err
	}
	return createNodes(ctx, cs, nodes)
}
