//go:build sandbox

package sandbox

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// Debian's nginx (make deps) accepts every shape of configuration that
// ingress-sync renders, and writes nothing outside the ingress directory
// while checking it.
func TestNginxAcceptsTheRenderedIngressConfig(t *testing.T) {
	l := newIngressLayout(t.TempDir())
	outside := func() (names []string) {
		for _, d := range []string{"/var/lib/nginx", "/var/log/nginx", "/run"} {
			es, _ := os.ReadDir(d)
			for _, e := range es {
				if strings.Contains(e.Name(), "nginx") || d != "/run" {
					names = append(names, d+"/"+e.Name())
				}
			}
		}
		return names
	}
	before := outside()
	t.Cleanup(func() {
		if after := outside(); !slices.Equal(before, after) {
			t.Errorf("nginx -t wrote outside the ingress directory: before %v, after %v", before, after)
		}
	})
	if err := os.MkdirAll(l.tmp(), 0o755); err != nil {
		t.Fatal(err)
	}
	routes := []ingressRoute{
		{Path: "/", Service: "demo/root", Upstream: "svc_demo_root", Servers: []string{"10.201.64.4:8080"}},
		{Path: "/demo/", Service: "demo/app", Upstream: "svc_demo_app", Servers: []string{"10.201.64.4:8080", "10.201.64.5:8080"}},
		{Path: "/a/b.c/", Service: "demo/gone", Upstream: "svc_demo_gone"},
	}
	for name, cfg := range map[string]ingressConfig{
		"no routes": {Dir: l.dir, Listen: "127.0.0.1:1"},
		"routes with and without endpoints, one at /": {Dir: l.dir, Listen: "127.0.0.1:1", Routes: routes},
		"routes without one at /":                     {Dir: l.dir, Listen: "127.0.0.1:1", Routes: routes[1:]},
	} {
		t.Run(name, func(t *testing.T) {
			conf, _, err := renderIngressConf(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := writeFileAtomic(l.next(), conf); err != nil {
				t.Fatal(err)
			}
			if err := validateNginxConf(nginxBinary, l, l.next()); err != nil {
				t.Fatalf("%v\n%s", err, conf)
			}
		})
	}
	t.Run("a broken configuration is refused with nginx's own words", func(t *testing.T) {
		if err := writeFileAtomic(l.next(), []byte("daemon off;\nevents {}\nhttp { server { listen 127.0.0.1:1; locatio / {} } }\n")); err != nil {
			t.Fatal(err)
		}
		err := validateNginxConf(nginxBinary, l, l.next())
		if err == nil || !strings.Contains(err.Error(), `unknown directive "locatio"`) {
			t.Fatalf("err = %v, want nginx's complaint about the unknown directive", err)
		}
	})
}
