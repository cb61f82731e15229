package sandbox

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	toml "github.com/pelletier/go-toml/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"faultline.dev/faultline/sandbox/image"
)

// Images the real nodes run, imported from tarballs built on the spot.
const (
	PauseImage   = "faultline.local/pause:sandbox"
	DemoAppImage = "faultline.local/demo-app:sandbox"
)

// realNode is one real node's files and addresses.
type realNode struct {
	index                     int
	name, netns, dir          string
	addr                      netip.Addr
	podCIDR                   netip.Prefix
	cgroupRoot                string
	containerdSock, cniConfig string
}

func (s *State) realNodeLayout(p Plan, i int) realNode {
	name := RealNodeName(i)
	dir := filepath.Join(s.Config.Dir(), "nodes", name)
	return realNode{
		index: i, name: name, netns: p.NetnsName(name), dir: dir,
		addr: p.RealNodeAddr(i), podCIDR: p.RealNodePodCIDR(i),
		cgroupRoot:     cgroupRoot(s.Config.Name, name),
		containerdSock: filepath.Join(dir, "containerd.sock"),
		cniConfig:      filepath.Join(dir, "cni"),
	}
}

// binDir is where the static binaries live: faultline itself, and the
// demo-app and pause binaries that become images.
func (s *State) binDir() (string, error) {
	if s.Config.BinDir != "" {
		return s.Config.BinDir, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filepath.Dir(exe), nil
}

func (s *State) faultlineBinary() string {
	d, _ := s.binDir()
	return filepath.Join(d, "faultline")
}

// imageTarballs builds the pause and demo-app images once per `up`.
func (s *State) imageTarballs() (map[string]string, error) {
	bins, err := s.binDir()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	refs := map[string]string{PauseImage: "pause", DemoAppImage: "demo-app"}
	if s.Config.Install {
		for _, c := range image.Components {
			refs[image.Ref(image.Registry, c.Name, FaultlineImageTag)] = c.Name
		}
	}
	for ref, bin := range refs {
		src := filepath.Join(bins, bin)
		if _, err := os.Stat(src); err != nil {
			return nil, fmt.Errorf("image %s needs the static binary %s: build it with `make build`", ref, src)
		}
		dst := filepath.Join(s.Config.Dir(), "images", bin+".tar")
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		spec := image.FromBinary(ref, src)
		for _, c := range image.Components {
			if c.Name == bin {
				if spec, err = image.ForComponent(c, bins, image.Registry, FaultlineImageTag); err != nil {
					return nil, err
				}
			}
		}
		if err := image.WriteTarball(spec, dst); err != nil {
			return nil, err
		}
		out[ref] = dst
	}
	return out, nil
}

// startRealNode brings up one real node: its network namespace, cgroup
// root, containerd with the images imported, the kubelet and kube-proxy.
func (s *State) startRealNode(ctx context.Context, p Plan, cp *controlPlane, i int, images map[string]string) error {
	n := s.realNodeLayout(p, i)
	for _, d := range []string{n.dir, n.cniConfig} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	routes := map[netip.Prefix]netip.Addr{p.Super: p.BridgeAddr()}
	for j := range s.Config.RealNodes {
		if j != i {
			routes[p.RealNodePodCIDR(j)] = p.RealNodeAddr(j)
		}
	}
	if err := s.setupNodeNet(p, nodeNet{netns: n.netns, hostVeth: p.HostVeth('r', i), addr: n.addr, routes: routes, forward: true}); err != nil {
		return err
	}
	if err := routeVia(p, n.podCIDR, n.addr); err != nil {
		return err
	}
	if i == 0 {
		// The host reaches ClusterIPs through real-0's kube-proxy rules.
		if err := routeVia(p, p.ServiceCIDR(), n.addr); err != nil {
			return err
		}
	}
	if err := s.recordCgroup(n.cgroupRoot); err != nil {
		return err
	}
	// The kubelet refuses a cgroup root that does not exist; cgroup1.New
	// also seeds cpuset.cpus and cpuset.mems from the parent.
	if _, err := cgroup1.New(cgroup1.StaticPath(n.cgroupRoot), &specs.LinuxResources{}); err != nil {
		return fmt.Errorf("cgroup root %s: %w", n.cgroupRoot, err)
	}

	if err := s.startContainerd(ctx, n, images); err != nil {
		return err
	}
	if err := writeCNIConfig(n); err != nil {
		return err
	}
	if err := s.startKubelet(n, cp); err != nil {
		return err
	}
	return s.startKubeProxy(n, p, cp)
}

func (s *State) startContainerd(ctx context.Context, n realNode, images map[string]string) error {
	cfg := map[string]any{
		"version": 2,
		"root":    filepath.Join(n.dir, "containerd", "root"),
		"state":   filepath.Join(n.dir, "containerd", "state"),
		"grpc":    map[string]any{"address": n.containerdSock},
		"ttrpc":   map[string]any{"address": n.containerdSock + ".ttrpc"},
		"disabled_plugins": []string{
			"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
			"io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper",
			"io.containerd.tracing.processor.v1.otlp",
		},
		"plugins": map[string]any{
			"io.containerd.internal.v1.opt": map[string]any{"path": filepath.Join(n.dir, "containerd", "opt")},
			// containerd 1.6's task service needs the v1 runtime loaded; keep
			// its runc state with the node too.
			"io.containerd.runtime.v1.linux": map[string]any{"runtime_root": filepath.Join(n.dir, "containerd", "runc-v1")},
			"io.containerd.grpc.v1.cri": map[string]any{
				"sandbox_image": PauseImage,
				// This machine cannot lower oom_score_adj (no CAP_SYS_RESOURCE);
				// without this runc fails to start any container.
				"restrict_oom_score_adj": true,
				// Pod network namespaces live in the node's directory, where
				// `down` finds them, not in the host's /run/netns.
				"netns_mounts_under_state_dir": true,
				"enable_selinux":               false,
				"stream_server_address":        "127.0.0.1",
				"containerd": map[string]any{
					"snapshotter":          "overlayfs",
					"default_runtime_name": "runc",
					"runtimes": map[string]any{"runc": map[string]any{
						"runtime_type": "io.containerd.runc.v2",
						"options":      map[string]any{"Root": filepath.Join(n.dir, "containerd", "runc"), "SystemdCgroup": false},
					}},
				},
				"cni": map[string]any{"bin_dir": "/usr/lib/cni", "conf_dir": n.cniConfig},
			},
		},
	}
	b, err := toml.Marshal(cfg)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(n.dir, "containerd.toml")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return err
	}
	r, err := s.start(procSpec{name: "containerd-" + n.name, bin: "containerd", netns: n.netns, args: []string{"--config=" + cfgPath, "--log-level=warn"}})
	if err != nil {
		return err
	}
	if err := r.waitReady(ctx, 30*time.Second, func(ctx context.Context) error {
		return exec.CommandContext(ctx, "ctr", "--address", n.containerdSock, "version").Run()
	}); err != nil {
		return err
	}
	for ref, tarball := range images {
		out, err := exec.CommandContext(ctx, "ctr", "--address", n.containerdSock, "-n", "k8s.io", "images", "import", tarball).CombinedOutput()
		if err != nil {
			return &ComponentError{Component: "containerd-" + n.name, Log: r.Log, Tail: tail(r.Log, 10), Err: fmt.Errorf("import %s: %v: %s", ref, err, out)}
		}
	}
	return nil
}

// writeCNIConfig gives the node a bridge network with host-local addresses
// from its pod range. No masquerade: pods only ever talk inside the sandbox.
func writeCNIConfig(n realNode) error {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		// Named for the node: containerd caches CNI results in the machine's
		// /var/lib/cni under this name, and `down` removes them by it.
		"name": n.netns,
		"plugins": []any{map[string]any{
			"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
			"ipam": map[string]any{
				"type":   "host-local",
				"ranges": [][]map[string]string{{{"subnet": n.podCIDR.String()}}},
				"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
				// The IPAM store defaults to /var/lib/cni; keep it with the node.
				"dataDir": filepath.Join(n.dir, "cni-ipam"),
			},
		}},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(n.cniConfig, "10-faultline.conflist"), b, 0o644)
}

func (s *State) startKubelet(n realNode, cp *controlPlane) error {
	if err := cp.pki.issue("kubelet-"+n.name, "system:node:"+n.name, []string{"system:nodes"},
		[]string{n.addr.String(), n.name}, x509.ExtKeyUsageServerAuth); err != nil {
		return err
	}
	resolv := filepath.Join(n.dir, "resolv.conf")
	// Pods get no nameserver: there is none in the sandbox, and the host's
	// would send queries off the machine.
	if err := os.WriteFile(resolv, nil, 0o644); err != nil {
		return err
	}
	reserved, err := s.reservedMemory()
	if err != nil {
		return err
	}
	kc := kubeletv1beta1.KubeletConfiguration{
		Address:           n.addr.String(),
		Port:              10250,
		ReadOnlyPort:      0,
		TLSCertFile:       cp.pki.path("kubelet-" + n.name + ".crt"),
		TLSPrivateKeyFile: cp.pki.path("kubelet-" + n.name + ".key"),
		Authentication: kubeletv1beta1.KubeletAuthentication{
			X509:      kubeletv1beta1.KubeletX509Authentication{ClientCAFile: cp.pki.path("ca.crt")},
			Webhook:   kubeletv1beta1.KubeletWebhookAuthentication{Enabled: ptr.To(true)},
			Anonymous: kubeletv1beta1.KubeletAnonymousAuthentication{Enabled: ptr.To(false)},
		},
		Authorization:            kubeletv1beta1.KubeletAuthorization{Mode: kubeletv1beta1.KubeletAuthorizationModeWebhook},
		CgroupDriver:             "cgroupfs",
		CgroupRoot:               n.cgroupRoot,
		CgroupsPerQOS:            ptr.To(true),
		FailCgroupV1:             ptr.To(false), // these machines have cgroup v1
		FailSwapOn:               ptr.To(false),
		ContainerRuntimeEndpoint: "unix://" + n.containerdSock,
		PodLogsDir:               filepath.Join(n.dir, "pod-logs"),
		ResolverConfig:           ptr.To(resolv),
		HealthzBindAddress:       n.addr.String(),
		HealthzPort:              ptr.To[int32](10248),
		RegisterNode:             ptr.To(true),
		EnforceNodeAllocatable:   []string{"pods"},
		// Allocatable is sized (Config.RealNodeMemory) so that memory
		// pressure is reachable; the kubelet adds an allocatable threshold
		// to the hard one, and evicts once its pods' working set passes
		// the allocatable memory.
		SystemReserved: map[string]string{"memory": strconv.FormatInt(reserved, 10)},
		EvictionHard: map[string]string{
			"memory.available": evictionHardMemory, "nodefs.available": "10%", "imagefs.available": "15%", "nodefs.inodesFree": "5%",
		},
		// Evict as soon as the threshold is crossed, not at the next round.
		KernelMemcgNotification: true,
		// Report a pressure condition within 2 s, so that the node is
		// tainted before an evicted pod's replacement is scheduled back
		// onto it (10 s by default, when a Deployment's pods come back in
		// a loop and the kernel OOM-kills what the kubelet has not evicted).
		NodeStatusUpdateFrequency: metav1.Duration{Duration: 2 * time.Second},
		// Kubernetes' 5 minutes would hold MemoryPressure (and its taint)
		// long after a fault ends, and refuse BestEffort pods meanwhile.
		EvictionPressureTransitionPeriod: metav1.Duration{Duration: 15 * time.Second},
		ClusterDomain:                    "cluster.local",
		MaxPods:                          110,
		SerializeImagePulls:              ptr.To(false),
	}
	kc.APIVersion, kc.Kind = "kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"
	b, err := yaml.Marshal(kc)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(n.dir, "kubelet.yaml")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return err
	}
	kubeconfig, err := cp.kubeconfigFor(s.Config.Dir(), cp.ids.nodes[n.name])
	if err != nil {
		return err
	}
	_, err = s.start(procSpec{name: "kubelet-" + n.name, bin: tool("kubelet"), netns: n.netns, ports: []int{10250}, args: []string{
		"--config=" + cfgPath, "--kubeconfig=" + kubeconfig,
		"--hostname-override=" + n.name, "--node-ip=" + n.addr.String(),
		"--root-dir=" + filepath.Join(n.dir, "kubelet"),
		"--node-labels=" + LabelNodeKind + "=" + NodeReal,
		"--v=1",
	}})
	return err
}

func (s *State) startKubeProxy(n realNode, p Plan, cp *controlPlane) error {
	kubeconfig, err := cp.kubeconfigFor(s.Config.Dir(), cp.ids.kubeProxy)
	if err != nil {
		return err
	}
	_, err = s.start(procSpec{name: "kube-proxy-" + n.name, bin: tool("kube-proxy"), netns: n.netns, args: []string{
		"--kubeconfig=" + kubeconfig,
		"--hostname-override=" + n.name,
		"--proxy-mode=nftables",
		"--cluster-cidr=" + p.ClusterCIDR().String(),
		// The node shares the machine's conntrack table size; a network
		// namespace may not change it.
		"--conntrack-max-per-core=0",
		// This machine cannot lower oom_score_adj.
		"--oom-score-adj=0",
		"--metrics-bind-address=" + n.addr.String() + ":10249",
		"--healthz-bind-address=" + n.addr.String() + ":10256",
		"--v=1",
	}})
	return err
}

// evictionHardMemory is the kubelet's hard memory threshold. The pods'
// cgroup is capped that much above the allocatable memory: the margin in
// which the kubelet evicts before the kernel OOM-kills, so it must hold
// what a ramp adds between two of the kubelet's 10 s eviction rounds.
const evictionHardMemory = "300Mi"

// reservedMemory is what a real node's kubelet reserves for the system, so
// that its allocatable memory is Config.RealNodeMemory: the machine's
// memory (the kubelet's capacity) less that, less the hard threshold.
func (s *State) reservedMemory() (int64, error) {
	total, err := machineMemory()
	if err != nil {
		return 0, err
	}
	want := s.Config.realNodeMemory()
	hard := resource.MustParse(evictionHardMemory)
	reserved := total - want - hard.Value()
	if reserved <= 0 {
		return 0, fmt.Errorf("--real-node-memory %d: must be less than the machine's memory (%d bytes) less %s", want, total, evictionHardMemory)
	}
	return reserved, nil
}

// machineMemory is MemTotal, which the kubelet reports as capacity.
func machineMemory() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("/proc/meminfo: no MemTotal")
}

// kubeletSysctls are the kernel settings the kubelet changes on start; the
// sandbox restores their old values on `down`.
var kubeletSysctls = []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops", "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"}

func readSysctls() map[string]string {
	out := map[string]string{}
	for _, k := range kubeletSysctls {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			out[k] = strings.TrimSpace(string(b))
		}
	}
	return out
}
