package sandbox

import (
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func annotated(ns, name, path string, age time.Duration, ports ...corev1.ServicePort) *corev1.Service {
	if len(ports) == 0 {
		ports = []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}}
	}
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(time.Unix(1e9, 0).Add(-age))},
		Spec:       corev1.ServiceSpec{Ports: ports},
	}
	if path != "" {
		s.Annotations = map[string]string{IngressPathAnnotation: path}
	}
	return s
}

type ep struct {
	addr               string
	ready, terminating *bool
}

func slice(ns, svc, portName string, port int32, eps ...ep) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svc + "-" + portName, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(portName), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, e := range eps {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{e.addr}, Conditions: discoveryv1.EndpointConditions{Ready: e.ready, Terminating: e.terminating}})
	}
	return sl
}

var yes, no = ptr.To(true), ptr.To(false)

func TestIngressRoutes(t *testing.T) {
	tests := map[string]struct {
		services     []*corev1.Service
		slices       []*discoveryv1.EndpointSlice
		want         []ingressRoute
		wantProblems []string
	}{
		"a Service's ready endpoints are served on the target port its slice resolves": {
			services: []*corev1.Service{annotated("demo", "app", "/demo", 0)},
			slices:   []*discoveryv1.EndpointSlice{slice("demo", "app", "http", 8080, ep{"10.201.64.5", yes, no}, ep{"10.201.64.4", yes, nil})},
			want:     []ingressRoute{{Path: "/demo/", Service: "demo/app", Upstream: "svc_demo_app", Servers: []string{"10.201.64.4:8080", "10.201.64.5:8080"}}},
		},
		"not-ready and terminating endpoints are left out, and a nil ready counts as ready": {
			services: []*corev1.Service{annotated("demo", "app", "/demo/", 0)},
			slices: []*discoveryv1.EndpointSlice{slice("demo", "app", "http", 8080,
				ep{"10.201.64.1", no, nil}, ep{"10.201.64.2", yes, yes}, ep{"10.201.64.3", nil, nil})},
			want: []ingressRoute{{Path: "/demo/", Service: "demo/app", Upstream: "svc_demo_app", Servers: []string{"10.201.64.3:8080"}}},
		},
		"a Service with no ready endpoint still gets its path, with no servers (503)": {
			services: []*corev1.Service{annotated("demo", "app", "/demo", 0)},
			slices:   []*discoveryv1.EndpointSlice{slice("demo", "app", "http", 8080, ep{"10.201.64.1", no, nil})},
			want:     []ingressRoute{{Path: "/demo/", Service: "demo/app", Upstream: "svc_demo_app"}},
		},
		"only the first Service port counts, and endpoints of several slices are merged without duplicates": {
			services: []*corev1.Service{annotated("demo", "app", "/a/b", 0,
				corev1.ServicePort{Name: "web", Port: 80}, corev1.ServicePort{Name: "metrics", Port: 9090})},
			slices: []*discoveryv1.EndpointSlice{
				slice("demo", "app", "web", 8080, ep{"10.201.64.1", yes, nil}),
				slice("demo", "app", "web", 8080, ep{"10.201.64.1", yes, nil}, ep{"10.201.64.2", yes, nil}),
				slice("demo", "app", "metrics", 9100, ep{"10.201.64.9", yes, nil}),
			},
			want: []ingressRoute{{Path: "/a/b/", Service: "demo/app", Upstream: "svc_demo_app", Servers: []string{"10.201.64.1:8080", "10.201.64.2:8080"}}},
		},
		"slices of another Service, or of the same name in another namespace, are not used": {
			services: []*corev1.Service{annotated("demo", "app", "/demo", 0)},
			slices: []*discoveryv1.EndpointSlice{
				slice("demo", "other", "http", 8080, ep{"10.201.64.1", yes, nil}),
				slice("prod", "app", "http", 8080, ep{"10.201.64.2", yes, nil}),
			},
			want: []ingressRoute{{Path: "/demo/", Service: "demo/app", Upstream: "svc_demo_app"}},
		},
		"Services without the annotation are not routed": {
			services: []*corev1.Service{annotated("demo", "app", "", 0)},
			slices:   []*discoveryv1.EndpointSlice{slice("demo", "app", "http", 8080, ep{"10.201.64.1", yes, nil})},
		},
		"when two Services claim one path the older keeps it and the newer is reported": {
			services:     []*corev1.Service{annotated("b", "new", "/x", time.Minute), annotated("a", "old", "/x/", time.Hour)},
			want:         []ingressRoute{{Path: "/x/", Service: "a/old", Upstream: "svc_a_old"}},
			wantProblems: []string{"Service b/new: path /x/ already routes to the older Service a/old"},
		},
		"a path that could break the configuration is refused and reported": {
			services:     []*corev1.Service{annotated("demo", "app", `/x; return 200 "owned"`, 0)},
			wantProblems: []string{`Service demo/app: sandbox.faultline.dev/ingress-path "/x; return 200 \"owned\"": must be a path`},
		},
		"the ingress's own /healthz cannot be claimed": {
			services:     []*corev1.Service{annotated("demo", "app", "/healthz", 0)},
			wantProblems: []string{"/healthz is the ingress's own health check"},
		},
		"a UDP Service is refused": {
			services:     []*corev1.Service{annotated("demo", "dns", "/dns", 0, corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP})},
			wantProblems: []string{"Service demo/dns: its first port is UDP"},
		},
		"routes are sorted by path": {
			services: []*corev1.Service{annotated("demo", "z", "/z", 0), annotated("demo", "a", "/a", 0), annotated("demo", "root", "/", 0)},
			want: []ingressRoute{
				{Path: "/", Service: "demo/root", Upstream: "svc_demo_root"},
				{Path: "/a/", Service: "demo/a", Upstream: "svc_demo_a"},
				{Path: "/z/", Service: "demo/z", Upstream: "svc_demo_z"},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, problems := ingressRoutes(tc.services, tc.slices)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("routes =\n  %+v\nwant\n  %+v", got, tc.want)
			}
			if len(problems) != len(tc.wantProblems) {
				t.Fatalf("problems = %q, want %d like %q", problems, len(tc.wantProblems), tc.wantProblems)
			}
			for i, w := range tc.wantProblems {
				if !strings.Contains(problems[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, problems[i], w)
				}
			}
		})
	}
}

func TestRenderIngressConf(t *testing.T) {
	base := ingressConfig{Dir: "/var/lib/faultline/sandbox/x/ingress", Listen: "10.201.0.1:34567"}
	with := func(routes ...ingressRoute) ingressConfig { c := base; c.Routes = routes; return c }
	demo := ingressRoute{Path: "/demo/", Service: "demo/app", Upstream: "svc_demo_app", Servers: []string{"10.201.64.4:8080", "10.201.64.5:8080"}}
	empty := ingressRoute{Path: "/gone/", Service: "demo/gone", Upstream: "svc_demo_gone"}
	tests := map[string]struct {
		cfg           ingressConfig
		want, wantNot []string
	}{
		"nginx stays in the foreground and writes only inside the sandbox": {
			cfg: base,
			want: []string{
				"daemon off;",
				"pid /var/lib/faultline/sandbox/x/ingress/nginx.pid;",
				"lock_file /var/lib/faultline/sandbox/x/ingress/nginx.lock;",
				"error_log stderr",
				"access_log /var/lib/faultline/sandbox/x/ingress/access.log",
				"client_body_temp_path /var/lib/faultline/sandbox/x/ingress/tmp/body;",
				"proxy_temp_path /var/lib/faultline/sandbox/x/ingress/tmp/proxy;",
				"fastcgi_temp_path /var/lib/faultline/sandbox/x/ingress/tmp/fastcgi;",
				"uwsgi_temp_path /var/lib/faultline/sandbox/x/ingress/tmp/uwsgi;",
				"scgi_temp_path /var/lib/faultline/sandbox/x/ingress/tmp/scgi;",
			},
			wantNot: []string{"/var/lib/nginx", "/var/log/nginx", "/run/"},
		},
		"it listens on the bridge and answers /healthz itself": {
			cfg:  base,
			want: []string{"listen 10.201.0.1:34567;", "location = /healthz {", `return 200 "ok\n";`},
		},
		"a request is tried once, on a fresh connection, with the given timeouts": {
			cfg:     with(demo),
			want:    []string{"proxy_next_upstream off;", "proxy_connect_timeout 2s;", "proxy_read_timeout 30s;", "proxy_http_version 1.0;", "max_fails=0;"},
			wantNot: []string{"\n        keepalive ", "proxy_next_upstream error", "proxy_next_upstream_tries"},
		},
		"a route with ready endpoints proxies to an upstream of them, prefix stripped": {
			cfg: with(demo),
			want: []string{
				"upstream svc_demo_app {\n        server 10.201.64.4:8080 max_fails=0;\n        server 10.201.64.5:8080 max_fails=0;\n    }",
				"location /demo/ {\n            proxy_pass http://svc_demo_app/;",
				"proxy_set_header X-Forwarded-Prefix /demo;",
			},
		},
		"a route without ready endpoints answers 503 and has no upstream": {
			cfg:     with(empty),
			want:    []string{"location /gone/ {\n            return 503 \"no ready endpoints for Service demo/gone\\n\";\n        }"},
			wantNot: []string{"upstream svc_demo_gone"},
		},
		"paths nothing claims answer 404 with a hint": {
			cfg:  with(demo),
			want: []string{"location / {\n            return 404 \"no sandbox ingress route for this path; route one with the Service annotation sandbox.faultline.dev/ingress-path: /PATH\\n\";"},
		},
		"a Service routed at / replaces the 404 location and sends no empty prefix": {
			cfg:     with(ingressRoute{Path: "/", Service: "demo/root", Upstream: "svc_demo_root", Servers: []string{"10.201.64.4:8080"}}),
			want:    []string{"location / {\n            proxy_pass http://svc_demo_root/;"},
			wantNot: []string{"return 404", "X-Forwarded-Prefix"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, hash, err := renderIngressConf(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			conf := string(b)
			if !strings.Contains(conf, `add_header X-Faultline-Ingress-Config "`+hash+`" always;`) || len(hash) != 12 {
				t.Errorf("the config does not serve its hash %q in /healthz", hash)
			}
			for _, w := range tc.want {
				if !strings.Contains(conf, w) {
					t.Errorf("config lacks %q:\n%s", w, conf)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(conf, w) {
					t.Errorf("config holds %q:\n%s", w, conf)
				}
			}
		})
	}
}

func TestRenderIngressConfHashFollowsTheContent(t *testing.T) {
	c := ingressConfig{Dir: "/d", Listen: "10.201.0.1:1"}
	_, h1, _ := renderIngressConf(c)
	_, h2, _ := renderIngressConf(c)
	c.Routes = []ingressRoute{{Path: "/a/", Service: "n/a", Upstream: "svc_n_a"}}
	_, h3, _ := renderIngressConf(c)
	if h1 != h2 || h1 == h3 {
		t.Errorf("hashes %s, %s (same config) and %s (another): want equal, then different", h1, h2, h3)
	}
}
