package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"path/filepath"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"faultline.dev/faultline/charts"
	"faultline.dev/faultline/deploy"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/sandbox/image"
)

// FaultlineNamespace is faultline's own namespace in the sandbox.
const FaultlineNamespace = "faultline-system"

// Component names of faultline in the sandbox.
const ControllerComponent = "faultline-controller"

// AgentComponent names the agent of a node.
func AgentComponent(node string) string { return "faultline-agent-" + node }

// startFaultline installs the CRDs and runs faultline's controller and
// agents as sandbox components. The in-cluster install is the Helm chart's.
func (s *State) startFaultline(ctx context.Context, cs kubernetes.Interface) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		return err
	}
	crds, err := deploy.CRDs()
	if err != nil {
		return err
	}
	if err := deploy.Apply(ctx, cfg, crds); err != nil {
		return fmt.Errorf("install faultline's CRDs: %w", err)
	}
	// The controller must not start before every kind is served (its
	// informers would find no such kind).
	if err := deploy.WaitServed(ctx, cfg, crds, 30*time.Second); err != nil {
		return fmt.Errorf("faultline's CRDs: %w", err)
	}
	// faultline's own, and the agents' (the nodes' FaultAssignments), as
	// the chart makes them.
	for _, name := range []string{FaultlineNamespace, v1alpha1.DefaultAgentNamespace} {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	bins, err := s.binDir()
	if err != nil {
		return err
	}
	ports, err := freePorts(loopback, 2)
	if err != nil {
		return err
	}
	ctrlr, err := s.start(procSpec{name: ControllerComponent, bin: filepath.Join(bins, "faultline-controller"), ports: ports, args: []string{
		"--kubeconfig=" + s.Kubeconfig, "--namespace=" + FaultlineNamespace,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", ports[0]),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", ports[1]),
		"--report-grace=30s",
	}})
	if err != nil {
		return err
	}
	if err := ctrlr.waitReady(ctx, 60*time.Second, httpOK(http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1]), "")); err != nil {
		return err
	}
	return s.startAgents(bins, NodeIsolated, NodeReal)
}

// startAgents runs an agent process per node of the given kinds, inside
// the node's network namespace, so that cutting a node's link cuts its
// agent too.
func (s *State) startAgents(bins string, kinds ...string) error {
	for _, n := range s.Nodes {
		if !slices.Contains(kinds, n.Kind) {
			continue
		}
		args := []string{
			"--kubeconfig=" + s.Kubeconfig, "--node=" + n.Name,
			"--ledger-dir=" + filepath.Join(s.Config.Dir(), "agents", n.Name),
		}
		if n.Kind == NodeReal {
			// The kubelet's pod cgroup under this node's cgroup root: node
			// memory pressure is made there, where the kubelet counts it.
			args = append(args, "--pods-cgroup="+path.Join(cgroupRoot(s.Config.Name, n.Name), "kubepods"))
		}
		if _, err := s.start(procSpec{name: AgentComponent(n.Name), bin: filepath.Join(bins, "faultline-agent"), netns: n.Netns, args: args}); err != nil {
			return err
		}
	}
	return nil
}

// FaultlineImageTag tags the controller's and the agent's images that a
// sandbox builds from its binaries and imports.
const FaultlineImageTag = "sandbox"

// InstallValues are the chart values of a sandbox install: the imported
// images (never pulled), pods on real nodes only (kwok runs no
// containers), and ledgers in the sandbox's directory, which down removes:
// two sandboxes on one machine both have a node real-0.
func (s *State) InstallValues() map[string]any {
	onReal := map[string]any{LabelNodeKind: NodeReal}
	return map[string]any{
		"image":      map[string]any{"registry": image.Registry, "tag": FaultlineImageTag, "pullPolicy": "Never"},
		"controller": map[string]any{"nodeSelector": onReal},
		"agent":      map[string]any{"nodeSelector": onReal, "ledgerRoot": filepath.Join(s.Config.Dir(), "ledgers")},
	}
}

// installFaultline installs the chart with the Helm SDK and waits until the
// controller is Ready and an agent runs on every real node; isolated nodes
// get agent processes.
func (s *State) installFaultline(ctx context.Context, cs kubernetes.Interface, progress *Progress) error {
	progress.Printf("faultline: installing the Helm chart (controller and agent images imported into the real nodes)")
	in := &charts.Installer{Kubeconfig: s.Kubeconfig, Namespace: FaultlineNamespace}
	rel, err := in.Install(ctx, s.InstallValues(), 4*time.Minute)
	if err != nil {
		return err
	}
	ds, err := cs.AppsV1().DaemonSets(FaultlineNamespace).Get(ctx, "faultline-agent", metav1.GetOptions{})
	if err != nil {
		return err
	}
	bins, err := s.binDir()
	if err != nil {
		return err
	}
	if err := s.startAgents(bins, NodeIsolated); err != nil {
		return err
	}
	progress.Printf("faultline: release %s v%d deployed; controller Ready, %d agent pod(s) Ready, %d isolated-node agent process(es)",
		rel.Name, rel.Version, ds.Status.NumberReady, s.Config.IsolatedKwokNodes)
	return nil
}
