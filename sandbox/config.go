// Package sandbox runs a real, single-machine Kubernetes cluster for
// faultline's users and tests: etcd, the API server, the controller manager
// and the scheduler as host processes; kwok nodes (one shared process, plus
// one process per isolated node inside its own network namespace); and real
// nodes, each a network namespace with its own containerd, kubelet and
// kube-proxy. Nothing is pulled from a registry and no packet leaves the
// machine: every sandbox range is routed to a bridge the sandbox owns.
package sandbox

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
)

// Timings selects the node-lifecycle timings of the control plane.
type Timings string

const (
	// TimingsUpstream keeps Kubernetes' defaults: a 50 s node-monitor grace
	// period and 300 s not-ready/unreachable tolerations.
	TimingsUpstream Timings = "upstream"
	// TimingsFast shortens them (20 s grace, 30 s tolerations) so that a
	// node-loss timeline fits in a CI run.
	TimingsFast Timings = "fast"
)

// Config says what to bring up.
type Config struct {
	// Name tells sandboxes apart; several may run at once.
	Name string
	// SharedKwokNodes are simulated by a single kwok process on the host.
	SharedKwokNodes int
	// IsolatedKwokNodes each get a kwok process in their own network
	// namespace, so cutting that namespace's network is a real node loss.
	IsolatedKwokNodes int
	// RealNodes run containerd, a kubelet and kube-proxy, and real pods.
	RealNodes int
	// RealNodeMemory is each real node's allocatable memory in bytes: the
	// kubelet reserves the rest of the machine, so its pods (and memory
	// pressure faults) reach the kubelet's eviction threshold with a
	// bounded allocation, never the whole machine's. The pods' cgroup is
	// capped a little above it. 0 means DefaultRealNodeMemory.
	RealNodeMemory int64
	// Prometheus starts Debian's prometheus scraping the cluster.
	Prometheus bool
	// Faultline installs faultline's CRDs and runs its controller on the
	// host and an agent per isolated and real node, inside the node's
	// network namespace (so cutting a node's link cuts its agent too).
	Faultline bool
	// Install installs faultline with its Helm chart (the Helm SDK, as
	// `helm install` would), from images built from the local binaries and
	// imported into the real nodes' containerd: the controller and an agent
	// per real node run as pods. Isolated kwok nodes run no containers, so
	// their agents stay processes in their network namespaces.
	Install bool
	// ChaosMesh installs Chaos Mesh's CRDs and runs its controller manager
	// (built from its module by `make tools`) on the host, for experiments
	// with spec.engine: chaos-mesh. Without chaos-daemon, only what the
	// controller manager does through the API works for real: PodChaos.
	ChaosMesh bool
	// Ingress runs Debian's nginx on the sandbox bridge as a reverse proxy
	// in front of the ready endpoints of every Service annotated with
	// IngressPathAnnotation (see ingress.go), so that a refused upstream
	// becomes a real 502 as a user behind an ingress sees it.
	Ingress bool
	Timings Timings
	// BinDir holds faultline's static binaries: faultline itself, and
	// demo-app and pause, which become the real nodes' images. Empty means
	// the directory of the running program.
	BinDir string
	// Root is where sandboxes keep their state; empty means DefaultRoot.
	Root string
}

// DefaultRealNodeMemory is a real node's allocatable memory by default:
// room for the demo workloads, and a node-pressure eviction within reach
// of a 1 GiB allocation.
const DefaultRealNodeMemory = 1 << 30

// minRealNodeMemory leaves room for the kubelet's own pods' overhead.
const minRealNodeMemory = 256 << 20

// DefaultRoot is where sandboxes live unless Config.Root says otherwise.
const DefaultRoot = "/var/lib/faultline/sandbox"

// Limits of the address plan (see Plan).
const (
	maxIsolatedKwokNodes = 32
	maxRealNodes         = 16
	maxSharedKwokNodes   = 5000
	maxSandboxes         = 32
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,15}$`)

// DefaultConfig is what `faultline sandbox up` brings up without flags.
func DefaultConfig() Config {
	return Config{
		Name:              "default",
		SharedKwokNodes:   2,
		IsolatedKwokNodes: 2,
		RealNodes:         1,
		Timings:           TimingsUpstream,
	}
}

// Validate names the first bad field and says what is allowed.
func (c Config) Validate() error {
	switch {
	case !nameRE.MatchString(c.Name):
		return fmt.Errorf("--name %q: must be 1-16 characters of lowercase letters, digits and '-', starting with a letter", c.Name)
	case c.SharedKwokNodes < 0 || c.SharedKwokNodes > maxSharedKwokNodes:
		return fmt.Errorf("--kwok-nodes %d: must be between 0 and %d", c.SharedKwokNodes, maxSharedKwokNodes)
	case c.IsolatedKwokNodes < 0 || c.IsolatedKwokNodes > maxIsolatedKwokNodes:
		return fmt.Errorf("--isolated-nodes %d: must be between 0 and %d", c.IsolatedKwokNodes, maxIsolatedKwokNodes)
	case c.RealNodes < 0 || c.RealNodes > maxRealNodes:
		return fmt.Errorf("--real-nodes %d: must be between 0 and %d", c.RealNodes, maxRealNodes)
	case c.RealNodeMemory != 0 && c.RealNodeMemory < minRealNodeMemory:
		return fmt.Errorf("--real-node-memory %d: must be at least %d (256Mi)", c.RealNodeMemory, minRealNodeMemory)
	case c.Install && c.Faultline:
		return fmt.Errorf("--install and --faultline: choose one; --install runs faultline as pods from its chart, --faultline as processes")
	case c.Install && c.RealNodes == 0:
		return fmt.Errorf("--install needs --real-nodes of 1 or more: the chart's controller and agents run as pods on real nodes")
	case c.Timings != TimingsUpstream && c.Timings != TimingsFast:
		return fmt.Errorf("--timings %q: must be %q or %q", c.Timings, TimingsUpstream, TimingsFast)
	}
	return nil
}

// realNodeMemory is RealNodeMemory with its default.
func (c Config) realNodeMemory() int64 {
	if c.RealNodeMemory == 0 {
		return DefaultRealNodeMemory
	}
	return c.RealNodeMemory
}

func (c Config) root() string {
	if c.Root != "" {
		return c.Root
	}
	return DefaultRoot
}

// Dir is the sandbox's own directory: state, data, logs and certificates.
func (c Config) Dir() string { return filepath.Join(c.root(), c.Name) }

// UsersFile is where the test processes that share this sandbox hold
// their locks (sandboxtest). Down removes it with the sandbox: make test
// brings the shared one up and down itself, and its tests' processes end
// before.
func (c Config) UsersFile() string {
	return filepath.Join(os.TempDir(), "faultline-sandbox-"+c.Name+".users")
}

// Plan is a sandbox's address plan. Every range lies inside one /16 per
// sandbox (10.200+index.0.0/16), and that whole /16 is routed to the
// sandbox's bridge, so an address nothing answers for stays on the machine.
//
//	10.B.0.0/24      links: the bridge is .1, node namespaces .10 and up
//	10.B.16.0/20     services
//	10.B.64.0/24+i   pods of real node i
//	10.B.96.0/24+k   pods of isolated kwok node k (kwok's own IPs)
//	10.B.128.0/17    pods of the shared kwok nodes
type Plan struct {
	Index int
	Super netip.Prefix
}

// NewPlan returns the plan of the sandbox with the given index.
func NewPlan(index int) Plan {
	return Plan{Index: index, Super: netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", 200+index))}
}

func (p Plan) addr(c, d int) netip.Addr {
	b := p.Super.Addr().As4()
	return netip.AddrFrom4([4]byte{b[0], b[1], byte(c), byte(d)})
}

// BridgeAddr is the host's address on the sandbox bridge; the API server
// listens there so that nodes in other namespaces reach it over a link.
func (p Plan) BridgeAddr() netip.Addr   { return p.addr(0, 1) }
func (p Plan) LinkPrefix() netip.Prefix { return netip.PrefixFrom(p.addr(0, 0), 24) }

// ServiceCIDR holds ClusterIPs; the first one is the kubernetes Service.
func (p Plan) ServiceCIDR() netip.Prefix { return netip.PrefixFrom(p.addr(16, 0), 20) }
func (p Plan) KubernetesServiceIP() netip.Addr {
	return p.ServiceCIDR().Addr().Next()
}

// ClusterCIDR holds the pods of real and isolated nodes; kube-proxy treats
// traffic from outside it as external. Shared kwok pods never send any.
func (p Plan) ClusterCIDR() netip.Prefix { return netip.PrefixFrom(p.addr(64, 0), 18) }

// RealNodeAddr and RealNodePodCIDR are real node i's link address and pods.
func (p Plan) RealNodeAddr(i int) netip.Addr      { return p.addr(0, 10+i) }
func (p Plan) RealNodePodCIDR(i int) netip.Prefix { return netip.PrefixFrom(p.addr(64+i, 0), 24) }
func (p Plan) IsolatedNodeAddr(k int) netip.Addr  { return p.addr(0, 100+k) }
func (p Plan) IsolatedPodCIDR(k int) netip.Prefix { return netip.PrefixFrom(p.addr(96+k, 0), 24) }
func (p Plan) SharedKwokPodCIDR() netip.Prefix    { return netip.PrefixFrom(p.addr(128, 0), 17) }
func (p Plan) String() string                     { return p.Super.String() }
func (p Plan) BridgeName() string                 { return fmt.Sprintf("flbr%d", p.Index) }
func (p Plan) HostVeth(kind byte, i int) string   { return fmt.Sprintf("fl%d%c%d", p.Index, kind, i) }
func (p Plan) NetnsName(node string) string       { return fmt.Sprintf("fl%d-%s", p.Index, node) }

// cgroupRoot is a node's cgroup root: named for the sandbox and the node,
// whatever the address plan, so the agent can be told its kubelet's.
func cgroupRoot(name, node string) string {
	return fmt.Sprintf("/faultline-%s-%s", name, node)
}

// Node names, stable so that tests and docs can refer to them.
func SharedKwokNodeName(i int) string   { return fmt.Sprintf("kwok-%d", i) }
func IsolatedKwokNodeName(k int) string { return fmt.Sprintf("isolated-%d", k) }
func RealNodeName(i int) string         { return fmt.Sprintf("real-%d", i) }
