// Package charts holds faultline's Helm chart, embedded so that the CLI
// installs exactly what the repository ships, and the Helm SDK calls that
// render, lint, install and uninstall it as the helm command would.
package charts

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

//go:embed all:faultline
var files embed.FS

// ReleaseName is the release faultline's own tools install and remove.
const ReleaseName = "faultline"

// KubeVersion is the Kubernetes version client-only renders assume: the
// sandbox's.
const KubeVersion = "v1.35.4"

// Load returns the embedded chart.
func Load() (*chart.Chart, error) {
	var bf []*loader.BufferedFile
	err := fs.WalkDir(files, "faultline", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		bf = append(bf, &loader.BufferedFile{Name: strings.TrimPrefix(p, "faultline/"), Data: b})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return loader.LoadFiles(bf)
}

// Rendered is a client-side render, as `helm template --include-crds`.
type Rendered struct {
	// Manifest is every object but the CRDs, as one YAML stream.
	Manifest string
	// CRDs are the chart's crds/ files, which Helm installs first and never
	// deletes.
	CRDs []string
	// Notes are what `helm install` prints.
	Notes string
	// Hooks are the objects Helm makes around an install or an uninstall
	// (the pre-delete drain Job), one YAML document each.
	Hooks []string
}

// Render renders the chart with values into namespace, validating the
// values against values.schema.json as helm does.
func Render(values map[string]any, namespace string) (*Rendered, error) {
	ch, err := Load()
	if err != nil {
		return nil, err
	}
	cfg := &action.Configuration{Releases: storage.Init(driver.NewMemory()), Capabilities: chartutil.DefaultCapabilities}
	in := action.NewInstall(cfg)
	in.ClientOnly, in.DryRun, in.ReleaseName, in.Namespace = true, true, ReleaseName, namespace
	kv, err := chartutil.ParseKubeVersion(KubeVersion)
	if err != nil {
		return nil, err
	}
	in.KubeVersion = kv
	rel, err := in.Run(ch, values)
	if err != nil {
		return nil, err
	}
	out := &Rendered{Manifest: rel.Manifest, Notes: rel.Info.Notes}
	for _, h := range rel.Hooks {
		out.Hooks = append(out.Hooks, h.Manifest)
	}
	for _, f := range ch.CRDObjects() {
		out.CRDs = append(out.CRDs, string(f.File.Data))
	}
	return out, nil
}

// Installer installs and uninstalls the chart in a cluster with the Helm
// SDK, keeping the release in Secrets of the namespace as helm does.
type Installer struct {
	Kubeconfig string
	Namespace  string
	// Log receives Helm's progress lines.
	Log func(format string, v ...any)
}

func (i *Installer) config() (*action.Configuration, error) {
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Namespace = &i.Kubeconfig, &i.Namespace
	cfg := &action.Configuration{}
	log := i.Log
	if log == nil {
		log = func(string, ...any) {}
	}
	if err := cfg.Init(flags, i.Namespace, "secret", log); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Install installs the chart as `helm install --create-namespace --wait`
// would, and waits until every workload is ready or timeout passes.
func (i *Installer) Install(ctx context.Context, values map[string]any, timeout time.Duration) (*release.Release, error) {
	ch, err := Load()
	if err != nil {
		return nil, err
	}
	cfg, err := i.config()
	if err != nil {
		return nil, err
	}
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace, in.CreateNamespace = ReleaseName, i.Namespace, true
	in.Wait, in.Timeout = true, timeout
	rel, err := in.RunWithContext(ctx, ch, values)
	if err != nil {
		return nil, fmt.Errorf("helm install %s in %s: %w", ReleaseName, i.Namespace, err)
	}
	return rel, nil
}

// Uninstall removes the release and waits for its objects to be gone. The
// CRDs stay, as with helm: deleting them would delete every Experiment.
func (i *Installer) Uninstall(timeout time.Duration) error {
	cfg, err := i.config()
	if err != nil {
		return err
	}
	un := action.NewUninstall(cfg)
	un.Wait, un.Timeout = true, timeout
	if _, err := un.Run(ReleaseName); err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
		return fmt.Errorf("helm uninstall %s: %w", ReleaseName, err)
	}
	return nil
}
