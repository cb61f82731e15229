//go:build sandbox

package sandbox_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"faultline.dev/faultline/sandbox"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

// fakeTools makes a tools directory whose etcd prints a line and fails.
func fakeTools(t *testing.T) string {
	root := t.TempDir()
	tools := filepath.Join(root, filepath.Base(sandbox.ToolsDir())) // the versioned leaf
	if err := os.MkdirAll(tools, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range sandbox.ToolBinaries {
		script := "#!/bin/sh\nexit 0\n"
		if b == "etcd" {
			script = "#!/bin/sh\necho 'etcdmain: cannot open the data directory: disk on fire' >&2\nexit 3\n"
		}
		if err := os.WriteFile(filepath.Join(tools, b), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tools, "."+b+".ok"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestUpExplainsWhatIsWrong(t *testing.T) {
	sandboxtest.RequireRoot(t)
	sandboxtest.Hold(t, sandboxtest.Shared(sandboxtest.ControlPlane))
	bins, err := sandboxtest.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		setup func(t *testing.T, c *sandbox.Config)
		want  []string
	}{
		"a missing Debian package names it and the command that installs it": {
			setup: func(t *testing.T, c *sandbox.Config) { t.Setenv("PATH", t.TempDir()) },
			want:  []string{"missing Debian package(s)", "containerd", "make deps", "apt-get install -y"},
		},
		// From a checkout, up builds what is missing
		// (TestUpBuildsOnlyTheToolsItsSandboxRuns); without one, it says
		// what to run.
		"missing tool binaries with no checkout to build them from name them and `make tools`": {
			setup: func(t *testing.T, c *sandbox.Config) {
				t.Setenv("FAULTLINE_TOOLS_DIR", t.TempDir())
				t.Chdir(t.TempDir())
			},
			want: []string{"missing tool binaries", "kube-apiserver", "make tools"},
		},
		"--chaos-mesh with nothing built and no checkout to build it from names the command that builds it": {
			setup: func(t *testing.T, c *sandbox.Config) {
				t.Setenv("FAULTLINE_TOOLS_DIR", fakeTools(t))
				t.Chdir(t.TempDir())
				c.ChaosMesh = true
			},
			want: []string{"--chaos-mesh needs Chaos Mesh's controller manager", "make tools-chaos-mesh"},
		},
		"a component that fails to start is named, with the last lines of its log": {
			setup: func(t *testing.T, c *sandbox.Config) { t.Setenv("FAULTLINE_TOOLS_DIR", fakeTools(t)) },
			want:  []string{"etcd failed", "disk on fire", "logs/etcd.log"},
		},
		"a sandbox that is already up is named, with what to do": {
			setup: func(t *testing.T, c *sandbox.Config) { *c = sandboxtest.Get(t).State.Config },
			want:  []string{"already exists", "is up since", "faultline sandbox down --name"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := sandbox.DefaultConfig()
			c.Name, c.BinDir = "errors", bins
			tc.setup(t, &c)
			_, err := sandbox.Up(context.Background(), c, nil, false)
			if err == nil {
				_ = sandbox.Down(c, nil)
				t.Fatal("up succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if c.Name == "errors" {
				if _, err := os.Stat(c.Dir()); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a failed up left %s behind", c.Dir())
				}
			}
		})
	}
}
