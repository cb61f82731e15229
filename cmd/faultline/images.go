package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"faultline.dev/faultline/sandbox/image"
)

func newImagesCommand() *cobra.Command {
	var binDir, out, registry, tag string
	var push bool
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Build the controller's and the agent's OCI images from their static binaries",
		Long: `Builds the faultline-controller and faultline-agent images from the static
Go binaries of 'make build', with no Dockerfile and no Docker engine: one
layer holding the binary, reproducible (the same binary gives the same
digest). The agent's binary is also its memory stressor and its syscall
tracer and speaks netfilter and netlink itself, so its image needs nothing else.

By default the images are written as tarballs into --out, which
'ctr -n k8s.io images import' (or 'faultline sandbox up --install') loads
into containerd. With --push they go to --registry instead, with the
credentials of your Docker config.`,
		Example: `  make build && faultline images --out bin/images
  ctr -n k8s.io images import bin/images/faultline-agent.tar
  faultline images --push --registry registry.example.internal/platform --tag v0.3.0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if binDir == "" {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				binDir = filepath.Dir(exe)
			}
			if push && registry == image.Registry {
				return fmt.Errorf("--push: %s is not a registry; give yours with --registry", image.Registry)
			}
			for _, c := range image.Components {
				spec, err := image.ForComponent(c, binDir, registry, tag)
				if err != nil {
					return err
				}
				if push {
					ref, err := name.ParseReference(spec.Ref)
					if err != nil {
						return fmt.Errorf("--registry %q: %w", registry, err)
					}
					img, err := image.Build(spec)
					if err != nil {
						return err
					}
					if err := remote.Write(ref, img, remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(cmd.Context())); err != nil {
						return fmt.Errorf("push %s: %w", spec.Ref, err)
					}
					fmt.Fprintf(cmd.OutOrStdout(), "pushed %s\n", spec.Ref)
					continue
				}
				if err := os.MkdirAll(out, 0o755); err != nil {
					return err
				}
				dst := filepath.Join(out, c.Name+".tar")
				if err := image.WriteTarball(spec, dst); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s -> %s\n", spec.Ref, dst)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&binDir, "bin-dir", "", "directory with the static faultline-controller and faultline-agent binaries (default: this program's)")
	cmd.Flags().StringVar(&out, "out", "images", "directory the image tarballs are written to")
	cmd.Flags().StringVar(&registry, "registry", image.Registry, "registry (and path) of the image references")
	cmd.Flags().StringVar(&tag, "tag", version, "tag of the images; the chart's image.tag must name it")
	cmd.Flags().BoolVar(&push, "push", false, "push to --registry instead of writing tarballs")
	return cmd
}
