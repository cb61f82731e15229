package image

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Registry is where faultline's images live when no registry is given:
// a name no registry answers to, so that a node can only have them
// imported (imagePullPolicy: Never or IfNotPresent).
const Registry = "faultline.local"

// Component is one of faultline's in-cluster images.
type Component struct {
	// Name is the image's and the binary's name.
	Name string
	// User runs it. The controller needs no privilege; the agent must be
	// root, since it enters network namespaces, traces processes and writes
	// cgroups (the chart runs it privileged).
	User string
}

// Components are the images `make images` builds. The agent's one binary
// is also its memory stressor and its tracer, so the image needs nothing
// else: no shell, no tc, no nft (netfilter and netlink are spoken directly).
var Components = []Component{
	{Name: "faultline-controller", User: "65532:65532"},
	{Name: "faultline-agent", User: "0:0"},
}

// Ref is a component's image reference in registry at version.
func Ref(registry, component, version string) string {
	return strings.TrimSuffix(registry, "/") + "/" + component + ":" + version
}

// ForComponent is the image of a component from its static binary in binDir.
func ForComponent(c Component, binDir, registry, version string) (Spec, error) {
	bin := filepath.Join(binDir, c.Name)
	if _, err := os.Stat(bin); err != nil {
		return Spec{}, fmt.Errorf("image %s needs the static binary %s: build it with `make build`", c.Name, bin)
	}
	s := FromBinary(Ref(registry, c.Name, version), bin)
	s.User = c.User
	s.Labels = map[string]string{
		"org.opencontainers.image.title":   c.Name,
		"org.opencontainers.image.version": version,
		"org.opencontainers.image.vendor":  "faultline",
	}
	return s, nil
}
