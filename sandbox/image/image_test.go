package image

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestFromBinaryMakesARunnableReproducibleImage(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "demo-app")
	if err := os.WriteFile(bin, []byte("\x7fELF pretend"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := FromBinary("faultline.local/demo-app:sandbox", bin)
	out := filepath.Join(dir, "img.tar")
	if err := WriteTarball(spec, out); err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/demo-app" {
		t.Errorf("config = %s/%s entrypoint %v, want linux/amd64 [/demo-app]", cf.OS, cf.Architecture, cf.Config.Entrypoint)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d (%v), want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]int64{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h.Mode
	}
	if files["demo-app"] != 0o755 {
		t.Errorf("layer files = %v, want demo-app with mode 0755", files)
	}
	if _, ok := files["tmp/"]; !ok {
		t.Errorf("layer files = %v, want a /tmp directory", files)
	}

	// The same inputs give the same digest, so re-imports are no-ops.
	a, _ := Build(spec)
	b, _ := Build(spec)
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Errorf("digests differ between two builds: %s vs %s", da, db)
	}
}

func TestTheAgentRunsAsRootAndTheControllerDoesNot(t *testing.T) {
	dir := t.TempDir()
	for _, c := range Components {
		if err := os.WriteFile(filepath.Join(dir, c.Name), []byte("\x7fELF "+c.Name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	users := map[string]string{}
	for _, c := range Components {
		s, err := ForComponent(c, dir, Registry, "v1.2.3")
		if err != nil {
			t.Fatal(err)
		}
		img, err := Build(s)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if s.Ref != "faultline.local/"+c.Name+":v1.2.3" || cf.Config.Labels["org.opencontainers.image.version"] != "v1.2.3" {
			t.Errorf("%s: ref %s, labels %v: want the version in both", c.Name, s.Ref, cf.Config.Labels)
		}
		users[c.Name] = cf.Config.User
	}
	if users["faultline-controller"] != "65532:65532" || users["faultline-agent"] != "0:0" {
		t.Errorf("users = %v, want the controller unprivileged and the agent root", users)
	}
	if _, err := ForComponent(Components[0], t.TempDir(), Registry, "v1"); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("a missing binary: err = %v, want one that says to run make build", err)
	}
}
