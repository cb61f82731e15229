package image

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
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
