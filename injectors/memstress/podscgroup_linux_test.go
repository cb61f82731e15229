package memstress

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestThePodsCgroupIsFoundFromAPodsOwnCgroup(t *testing.T) {
	tests := map[string]struct {
		file, want, err string
	}{
		"a cgroupfs kubelet under a node's cgroup root (the sandbox's real nodes)": {
			file: "12:memory:/faultline/test/real-0/kubepods/burstable/pod1234/abcd\n11:cpu,cpuacct:/x\n",
			want: "/faultline/test/real-0/kubepods",
		},
		"a systemd kubelet": {
			file: "9:memory:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-ab.scope\n",
			want: "/kubepods.slice",
		},
		"cgroup v2 only": {
			file: "0::/kubepods/guaranteed/pod1/ab\n",
			want: "/kubepods",
		},
		"a process outside any pod is told to give the flag": {
			file: "12:memory:/user.slice\n",
			err:  "give --pods-cgroup",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "cgroup")
			if err := os.WriteFile(f, []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := PodsCgroupOf(f)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("PodsCgroupOf = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
