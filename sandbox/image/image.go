// Package image turns static binaries into container images, written as
// docker-archive tarballs that `ctr images import` loads. There is no
// registry and no Docker engine on the machines faultline's sandbox runs on.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// File is one file of the image's only layer.
type File struct {
	Path string // inside the image, absolute
	Src  string // on the host
	Mode int64
}

// Spec describes an image made of static files.
type Spec struct {
	Ref        string // e.g. faultline.local/demo-app:sandbox
	Files      []File
	Entrypoint []string
	Env        []string
	// User runs the entrypoint, such as 65532:65532; empty is root.
	User string
	// Labels are OCI annotations of the image config, such as its version.
	Labels map[string]string
}

// FromBinary is the common case: one static binary as the entrypoint.
func FromBinary(ref, bin string) Spec {
	p := "/" + filepath.Base(bin)
	return Spec{Ref: ref, Files: []File{{Path: p, Src: bin, Mode: 0o755}}, Entrypoint: []string{p}}
}

// epoch keeps the image reproducible: same inputs, same digest.
var epoch = time.Unix(0, 0).UTC()

// Build assembles the image.
func Build(s Spec) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range s.Files {
		b, err := os.ReadFile(f.Src)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", s.Ref, err)
		}
		for d := filepath.Dir(f.Path); d != "/" && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d[1:] + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return nil, err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.Path[1:], Mode: f.Mode, Size: int64(len(b)), ModTime: epoch}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	// Programs expect a writable /tmp.
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: epoch}); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", "amd64", v1.Time{Time: epoch}
	cf.Config.Entrypoint = s.Entrypoint
	cf.Config.Env = append([]string{"PATH=/"}, s.Env...)
	cf.Config.User = s.User
	cf.Config.Labels = s.Labels
	return mutate.ConfigFile(img, cf)
}

// WriteTarball builds the image and writes it as a docker-archive tarball.
func WriteTarball(s Spec, path string) error {
	img, err := Build(s)
	if err != nil {
		return err
	}
	ref, err := name.ParseReference(s.Ref)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", s.Ref, err)
	}
	return tarball.WriteToFile(path, ref, img)
}
