package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Pinned versions of the binaries that `make tools` builds. They must match
// sandbox/tools/build.sh; a unit test keeps the two in step.
const (
	KubernetesVersion = "v1.35.4"
	EtcdVersion       = "v3.6.7"
	KwokVersion       = "v0.7.0"
)

// ToolBinaries are the binaries `make tools` builds: what a sandbox runs,
// and kubectl, for people and for the tests.
var ToolBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl", "kwok"}

// ToolsFor are the tool binaries up runs for c: kwok only for kwok nodes,
// so that a sandbox without them (the demo's) needs no kwok built.
func ToolsFor(c Config) []string {
	var out []string
	for _, b := range ToolBinaries {
		switch {
		case b == "kubectl":
		case b == "kwok" && c.SharedKwokNodes+c.IsolatedKwokNodes == 0:
		default:
			out = append(out, b)
		}
	}
	return out
}

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
	absent := missingTools(c)
	if c.ChaosMesh && !chaosMeshBuilt() {
		return errChaosMeshNotBuilt
	}
	if len(absent) > 0 {
		return fmt.Errorf("missing tool binaries %s in %s: build them with `make tools` (Kubernetes %s, etcd %s, kwok %s)",
			strings.Join(absent, ", "), dir, KubernetesVersion, EtcdVersion, KwokVersion)
	}
	return nil
}

func tool(name string) string { return filepath.Join(ToolsDir(), name) }

// errChaosMeshNotBuilt says how to build what --chaos-mesh runs, when up
// cannot build it itself (no checkout to build it from).
var errChaosMeshNotBuilt = errors.New("--chaos-mesh needs Chaos Mesh's controller manager and CRDs, which are built on first use from a faultline checkout: run `make tools-chaos-mesh` there (or sandbox/tools/build.sh chaos-mesh)")

// chaosMeshBuilt says whether what --chaos-mesh runs is in the tools
// directory.
func chaosMeshBuilt() bool {
	for _, stamp := range []string{".chaos-controller-manager.ok", ".chaos-mesh-crds.ok"} {
		if _, err := os.Stat(filepath.Join(ToolsDir(), stamp)); err != nil {
			return false
		}
	}
	return true
}

// BuildScript is sandbox/tools/build.sh of a faultline checkout: the one
// this program was built into (bin/faultline beside the sources), or the
// one the working directory is in. It is "" when there is none.
func BuildScript() string {
	var starts []string
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			starts = append(starts, filepath.Dir(exe))
		}
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for {
			if _, err := os.Stat(filepath.Join(dir, "sandbox", "tools", "chaosmesh", "go.mod")); err == nil {
				return filepath.Join(dir, "sandbox", "tools", "build.sh")
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return ""
}

// BuildTools runs script (see BuildScript) for the components named, with
// its progress lines on progress: what it builds, for how long, and how
// long the last build took.
func BuildTools(ctx context.Context, script string, progress *Progress, components ...string) error {
	cmd := exec.CommandContext(ctx, script, components...)
	cmd.Dir = filepath.Dir(script)
	w := io.Discard
	if progress != nil && progress.W != nil {
		w = progress.W
	}
	cmd.Stdout, cmd.Stderr = io.Discard, w
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", script, strings.Join(components, " "), err)
	}
	return nil
}

// ensureTools builds, on first use, what up runs for c and the tools
// directory lacks (kwok only for kwok nodes, Chaos Mesh only with
// --chaos-mesh), when a checkout can build it: `make demo` then builds no
// kwok for a demo without kwok nodes. Without a checkout, Preflight names
// what is missing and the command that builds it.
func ensureTools(ctx context.Context, c Config, progress *Progress) error {
	var components []string
	for _, b := range missingTools(c) {
		if comp := componentOf(b); !slices.Contains(components, comp) {
			components = append(components, comp)
		}
	}
	if c.ChaosMesh && !chaosMeshBuilt() {
		components = append(components, "chaos-mesh")
	}
	// In the script's own order: etcd and Chaos Mesh reuse what kube's
	// build compiled.
	order := []string{"kubernetes", "etcd", "kwok", "chaos-mesh"}
	slices.SortFunc(components, func(a, b string) int { return slices.Index(order, a) - slices.Index(order, b) })
	if len(components) == 0 {
		return nil
	}
	script := BuildScript()
	switch {
	case script == "" && slices.Contains(components, "chaos-mesh"):
		return errChaosMeshNotBuilt
	case script == "":
		return nil
	}
	progress.Printf("building what this sandbox runs and %s lacks, once: %s %s", ToolsDir(), script, strings.Join(components, " "))
	return BuildTools(ctx, script, progress, components...)
}

// missingTools are the tool binaries up runs for c that have no stamp in
// the tools directory.
func missingTools(c Config) []string {
	var out []string
	for _, b := range ToolsFor(c) {
		if _, err := os.Stat(filepath.Join(ToolsDir(), "."+b+".ok")); err != nil {
			out = append(out, b)
		}
	}
	return out
}

// componentOf is the build script's component that makes tool binary b.
func componentOf(b string) string {
	switch b {
	case "etcd", "kwok":
		return b
	}
	return "kubernetes"
}
