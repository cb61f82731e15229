package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Pinned versions of the binaries that `make tools` builds. They must match
// sandbox/tools/build.sh; a unit test keeps the two in step.
const (
	KubernetesVersion = "v1.35.4"
	EtcdVersion       = "v3.6.7"
	KwokVersion       = "v0.7.0"
)

// ToolBinaries are the binaries the sandbox needs from `make tools`.
var ToolBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl", "kwok"}

// ToolsDir is where `make tools` puts the pinned binaries:
// $FAULTLINE_TOOLS_DIR, or a versioned directory in the user's cache.
func ToolsDir() string {
	if d := os.Getenv("FAULTLINE_TOOLS_DIR"); d != "" {
		return filepath.Join(d, toolsSubdir())
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "faultline", "tools", toolsSubdir())
}

func toolsSubdir() string {
	return fmt.Sprintf("k8s-%s-etcd-%s-kwok-%s", KubernetesVersion, EtcdVersion, KwokVersion)
}

// requiredPackage is a host program the sandbox runs and the Debian package
// that provides it.
type requiredPackage struct {
	path, pkg string
	// only when the config asks for it
	when func(Config) bool
}

var hostPrograms = []requiredPackage{
	{path: "containerd", pkg: "containerd", when: needsRealNodes},
	{path: "ctr", pkg: "containerd", when: needsRealNodes},
	{path: "runc", pkg: "runc", when: needsRealNodes},
	{path: "/usr/lib/cni/bridge", pkg: "containernetworking-plugins", when: needsRealNodes},
	{path: "/usr/lib/cni/host-local", pkg: "containernetworking-plugins", when: needsRealNodes},
	{path: "/usr/lib/cni/loopback", pkg: "containernetworking-plugins", when: needsRealNodes},
	{path: "iptables", pkg: "iptables", when: needsRealNodes},
	{path: "nft", pkg: "nftables"},
	{path: "nsenter", pkg: "util-linux"},
	{path: "ip", pkg: "iproute2"},
	{path: "prometheus", pkg: "prometheus", when: func(c Config) bool { return c.Prometheus }},
	{path: nginxBinary, pkg: "nginx-light", when: func(c Config) bool { return c.Ingress }},
}

func needsRealNodes(c Config) bool { return c.RealNodes > 0 }

// Preflight checks what `up` needs before it changes anything: root, the
// host packages and the tool binaries. Its errors say how to fix them.
func Preflight(c Config) error {
	if os.Geteuid() != 0 {
		return errNotRoot
	}
	var missing []string
	seen := map[string]bool{}
	for _, r := range hostPrograms {
		if r.when != nil && !r.when(c) {
			continue
		}
		if _, err := exec.LookPath(r.path); err != nil && !seen[r.pkg] {
			seen[r.pkg] = true
			missing = append(missing, r.pkg)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing Debian package(s) %s: install them with `make deps` (or: apt-get install -y %s)",
			strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	dir := ToolsDir()
	var absent []string
	for _, b := range ToolBinaries {
		if _, err := os.Stat(filepath.Join(dir, "."+b+".ok")); err != nil {
			absent = append(absent, b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".chaos-controller-manager.ok")); c.ChaosMesh && err != nil {
		absent = append(absent, "chaos-controller-manager")
	}
	if len(absent) > 0 {
		return fmt.Errorf("missing tool binaries %s in %s: build them with `make tools` (Kubernetes %s, etcd %s, kwok %s)",
			strings.Join(absent, ", "), dir, KubernetesVersion, EtcdVersion, KwokVersion)
	}
	return nil
}

func tool(name string) string { return filepath.Join(ToolsDir(), name) }
