package sandbox

import (
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	with := func(f func(*Config)) Config { c := ok; f(&c); return c }
	tests := map[string]struct {
		cfg     Config
		wantErr string
	}{
		"the default configuration is valid":              {cfg: ok},
		"a thousand shared kwok nodes are allowed":        {cfg: with(func(c *Config) { c.SharedKwokNodes = 1000 })},
		"fast timings are allowed":                        {cfg: with(func(c *Config) { c.Timings = TimingsFast })},
		"a name with capitals is refused":                 {cfg: with(func(c *Config) { c.Name = "Test" }), wantErr: "--name"},
		"an empty name is refused":                        {cfg: with(func(c *Config) { c.Name = "" }), wantErr: "--name"},
		"a negative count of kwok nodes is refused":       {cfg: with(func(c *Config) { c.SharedKwokNodes = -1 }), wantErr: "--kwok-nodes"},
		"too many isolated nodes are refused":             {cfg: with(func(c *Config) { c.IsolatedKwokNodes = 33 }), wantErr: "--isolated-nodes"},
		"too many real nodes are refused":                 {cfg: with(func(c *Config) { c.RealNodes = 17 }), wantErr: "--real-nodes"},
		"unknown timings are refused and the two allowed": {cfg: with(func(c *Config) { c.Timings = "slow" }), wantErr: `must be "upstream" or "fast"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestPlanKeepsEveryRangeInsideTheSandboxSupernet(t *testing.T) {
	for _, idx := range []int{0, 7, maxSandboxes - 1} {
		p := NewPlan(idx)
		for name, pfx := range map[string]interface{ String() string }{
			"links": p.LinkPrefix(), "services": p.ServiceCIDR(), "cluster": p.ClusterCIDR(),
			"real pods": p.RealNodePodCIDR(maxRealNodes - 1), "isolated pods": p.IsolatedPodCIDR(maxIsolatedKwokNodes - 1),
			"kwok pods": p.SharedKwokPodCIDR(),
		} {
			if !p.Super.Overlaps(mustPrefix(t, pfx.String())) || mustPrefix(t, pfx.String()).Bits() < p.Super.Bits() {
				t.Errorf("sandbox %d: %s range %s is outside %s", idx, name, pfx, p.Super)
			}
		}
		if !p.ClusterCIDR().Contains(p.RealNodePodCIDR(maxRealNodes-1).Addr()) || !p.ClusterCIDR().Contains(p.IsolatedPodCIDR(maxIsolatedKwokNodes-1).Addr()) {
			t.Errorf("sandbox %d: cluster CIDR %s must hold every real and isolated pod range", idx, p.ClusterCIDR())
		}
		if p.ServiceCIDR().Overlaps(p.ClusterCIDR()) || p.LinkPrefix().Overlaps(p.ServiceCIDR()) || p.ClusterCIDR().Overlaps(p.SharedKwokPodCIDR()) {
			t.Errorf("sandbox %d: ranges overlap", idx)
		}
		if p.IsolatedNodeAddr(maxIsolatedKwokNodes - 1).As4()[3] == 255 || !p.LinkPrefix().Contains(p.RealNodeAddr(maxRealNodes-1)) {
			t.Errorf("sandbox %d: node addresses leave the link range", idx)
		}
		if len(p.HostVeth('r', maxRealNodes-1)) > 15 || len(p.BridgeName()) > 15 {
			t.Errorf("sandbox %d: link names exceed the kernel's 15 characters", idx)
		}
	}
}

// The versions that `make tools` builds and the ones the sandbox looks for
// must be the same, or every `up` fails with "missing tool binaries".
func TestToolVersionsMatchTheBuildScript(t *testing.T) {
	b, err := os.ReadFile("tools/build.sh")
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"K8S_VERSION": KubernetesVersion, "ETCD_VERSION": EtcdVersion, "KWOK_VERSION": KwokVersion} {
		m := regexp.MustCompile(`(?m)^` + key + `=(\S+)$`).FindSubmatch(b)
		if m == nil || string(m[1]) != want {
			t.Errorf("tools/build.sh %s = %q, the sandbox expects %q", key, m, want)
		}
	}
	k8s, err := os.ReadFile("tools/kubernetes/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(k8s), "k8s.io/kubernetes "+KubernetesVersion) {
		t.Errorf("tools/kubernetes/go.mod does not require k8s.io/kubernetes %s", KubernetesVersion)
	}
	// Chaos Mesh's controller manager serves the kinds faultline writes
	// with the main module's api types: one api version for both.
	api := regexp.MustCompile(`(?m)^\s*github\.com/chaos-mesh/chaos-mesh/api (?:=> github\.com/chaos-mesh/chaos-mesh/api )?(v\S+)`)
	main, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	cm, err := os.ReadFile("tools/chaosmesh/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	var mainAPI, toolsAPI string
	if m := api.FindSubmatch(main); m != nil {
		mainAPI = string(m[1])
	}
	for _, m := range api.FindAllSubmatch(cm, -1) {
		toolsAPI = string(m[1]) // the replace, after the require
	}
	if mainAPI == "" || mainAPI != toolsAPI {
		t.Errorf("the main module's chaos-mesh/api is %q, the Chaos Mesh tools module builds with %q", mainAPI, toolsAPI)
	}
}

// Every Debian package that Preflight can ask for is one `make deps`
// installs, or `make test` would fail where `make deps` said all is present.
func TestMakeDepsInstallsEveryPackagePreflightNeeds(t *testing.T) {
	b, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^DEPS := (.*)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("the Makefile has no DEPS := line")
	}
	deps := strings.Fields(string(m[1]))
	for _, r := range hostPrograms {
		if !slices.Contains(deps, r.pkg) {
			t.Errorf("Preflight asks for package %s (for %s), which the Makefile's DEPS lack", r.pkg, r.path)
		}
	}
}

func TestARangeWithAHostRouteInsideIsTaken(t *testing.T) {
	super := NewPlan(3).Super // 10.203.0.0/16
	route := func(cidr string) netlink.Route {
		_, n, _ := net.ParseCIDR(cidr)
		return netlink.Route{Dst: n}
	}
	tests := map[string]struct {
		routes []netlink.Route
		taken  bool
	}{
		"only a default route leaves it free":           {routes: []netlink.Route{{}}, taken: false},
		"a VPN route inside the range takes it":         {routes: []netlink.Route{route("10.203.7.0/24")}, taken: true},
		"a route covering the range takes it":           {routes: []netlink.Route{route("10.0.0.0/8")}, taken: true},
		"a route next to the range leaves it free":      {routes: []netlink.Route{route("10.204.0.0/16")}, taken: false},
		"the machine's own link network leaves it free": {routes: []netlink.Route{route("192.0.2.0/24")}, taken: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := rangeTaken(super, tc.routes); got != tc.taken {
				t.Errorf("rangeTaken = %v, want %v", got, tc.taken)
			}
		})
	}
}

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
