package memstress

import (
	"fmt"
	"path"
	"strings"

	"github.com/containerd/cgroups/v3"
)

// PodsCgroupOf finds the kubelet's pod cgroup (the kubepods ancestor) from
// the memory cgroup of a process that runs in a pod, such as the agent
// itself. A DaemonSet cannot know each node's cgroup root in advance; its
// own cgroup tells it.
func PodsCgroupOf(procCgroupFile string) (string, error) {
	paths, unified, err := cgroups.ParseCgroupFileUnified(procCgroupFile)
	if err != nil {
		return "", err
	}
	p, ok := paths["memory"]
	if !ok && unified != "" {
		p, ok = unified, true // cgroup v2 only: the 0::/path line
	}
	if !ok {
		return "", fmt.Errorf("%s names no memory cgroup", procCgroupFile)
	}
	segs := strings.Split(path.Clean(p), "/")
	for i, s := range segs {
		// kubepods (cgroupfs driver) or kubepods.slice (systemd driver).
		if s == "kubepods" || s == "kubepods.slice" {
			return "/" + path.Join(segs[:i+1]...), nil
		}
	}
	return "", fmt.Errorf("the memory cgroup %s has no kubepods ancestor: this process is not in a pod; give --pods-cgroup", p)
}
