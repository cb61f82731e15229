package sandbox

import (
	"os"
	"testing"

	"golang.org/x/mod/modfile"
)

// The sandbox's tools build from modules of their own, but every module
// they share with faultline, and with each other, is pinned at one version:
// the Go build cache then compiles client-go, the API types, gRPC and the
// rest once for all of them, and a fresh machine's first `make demo` pays
// for each package once, not up to three times.
func TestTheToolModulesPinWhatTheyShareAtTheMainModulesVersions(t *testing.T) {
	main, kube, etcd := modVersions(t, "../go.mod"), modVersions(t, "tools/kubernetes/go.mod"), modVersions(t, "tools/etcd/go.mod")
	for _, pair := range []struct {
		name  string
		a, b  map[string]string
		aName string
		bName string
	}{
		{"the Kubernetes tools and faultline", kube, main, "tools/kubernetes/go.mod", "go.mod"},
		{"etcd and the Kubernetes tools", etcd, kube, "tools/etcd/go.mod", "tools/kubernetes/go.mod"},
	} {
		for path, va := range pair.a {
			if vb, ok := pair.b[path]; ok && va != vb {
				t.Errorf("%s: %s pins %s %s, %s pins %s; run go get %s@%s in the older one's directory", pair.name, pair.aName, path, va, pair.bName, vb, path, max(va, vb))
			}
		}
	}
}

// modVersions are the versions a go.mod selects for the modules it names:
// its requires, overridden by its replaces with a version.
func modVersions(t *testing.T, file string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse(file, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range f.Require {
		out[r.Mod.Path] = r.Mod.Version
	}
	for _, r := range f.Replace {
		if r.New.Version != "" {
			out[r.Old.Path] = r.New.Version
		}
	}
	return out
}
