package v1alpha1

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The CRDs in deploy/crds and the deepcopy code are generated; a change to
// the types without `make generate` would ship a stale schema.
func TestGeneratedFilesAreUpToDate(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command("go", "tool", "controller-gen", "crd", "output:crd:artifacts:config="+out, "paths=./...")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen: %v\n%s", err, b)
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.yaml"))
	if len(files) == 0 {
		t.Fatal("controller-gen wrote no CRD")
	}
	for _, f := range files {
		want, _ := os.ReadFile(f)
		got, err := os.ReadFile(filepath.Join("..", "..", "..", "deploy", "crds", filepath.Base(f)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("deploy/crds/%s is stale: run `make generate`", filepath.Base(f))
		}
	}
	before, _ := os.ReadFile("zz_generated.deepcopy.go")
	gen := exec.Command("go", "tool", "controller-gen", "object", "paths=./...")
	if b, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen object: %v\n%s", err, b)
	}
	after, _ := os.ReadFile("zz_generated.deepcopy.go")
	if !bytes.Equal(before, after) {
		t.Error("zz_generated.deepcopy.go was stale (now regenerated): run `make generate` and commit")
	}
}
