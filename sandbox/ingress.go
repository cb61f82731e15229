package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// IngressPathAnnotation routes a path prefix of the sandbox ingress
// (`sandbox up --ingress`) to a Service:
//
//	metadata:
//	  annotations:
//	    sandbox.faultline.dev/ingress-path: /demo
//
// makes http://10.B.0.1:PORT/demo/REST reach GET /REST on one of the
// Service's ready endpoints: the prefix is stripped, as most ingress
// rewrites do, so an app serves the same paths behind the ingress as on its
// own (the prefix is passed on in X-Forwarded-Prefix). /demo without the
// slash is redirected to /demo/. The upstream port is the Service's first
// port's target port, as the EndpointSlices resolve it. The path is made of
// segments of letters, digits, '-', '_', '~' and '.' (not leading); when two
// Services claim one path, the older Service keeps it.
//
// While the Service has no ready endpoint the path answers 503, as ingress
// controllers do. A request is tried on exactly one endpoint, with no retry
// on another: a refused or reset connection is a 502 from nginx.
const IngressPathAnnotation = "sandbox.faultline.dev/ingress-path"

// Component names of the sandbox ingress: nginx's master process, and the
// program that rewrites nginx's configuration when Services change.
const (
	IngressComponent     = "ingress"
	IngressSyncComponent = "ingress-sync"
)

// nginxBinary is Debian's nginx (package nginx-light).
const nginxBinary = "/usr/sbin/nginx"

// ingressLayout is where the ingress keeps its files, all inside the
// sandbox's directory: nginx writes nothing to /var/lib/nginx, /var/log/nginx
// or /run.
type ingressLayout struct{ dir string }

func newIngressLayout(sandboxDir string) ingressLayout {
	return ingressLayout{dir: filepath.Join(sandboxDir, "ingress")}
}

func (l ingressLayout) conf() string { return filepath.Join(l.dir, "nginx.conf") }

// next is the candidate configuration that `nginx -t` checks before it
// replaces conf.
func (l ingressLayout) next() string    { return filepath.Join(l.dir, "nginx.conf.next") }
func (l ingressLayout) pidFile() string { return filepath.Join(l.dir, "nginx.pid") }
func (l ingressLayout) tmp() string     { return filepath.Join(l.dir, "tmp") }

// nginxArgs runs nginx in the foreground (daemon off is in the
// configuration) with the ingress directory as its prefix and errors on
// stderr, the component's log, from the first line on.
func (l ingressLayout) nginxArgs(conf string) []string {
	return []string{"-p", l.dir + "/", "-e", "stderr", "-c", conf}
}

// validateNginxConf runs `nginx -t` on a configuration and returns its
// complaint as the error.
func validateNginxConf(nginx string, l ingressLayout, conf string) error {
	out, err := exec.Command(nginx, append([]string{"-t", "-q"}, l.nginxArgs(conf)...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nginx -t rejected %s (%v):\n  %s", conf, err, strings.ReplaceAll(strings.TrimSpace(string(out)), "\n", "\n  "))
	}
	return nil
}

// writeFileAtomic writes a file in full under a temporary name, then
// renames it into place.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ingressRoute is one annotated Service as nginx serves it.
type ingressRoute struct {
	// Path is the location prefix; it begins and ends with '/'.
	Path string
	// Service is NAMESPACE/NAME.
	Service string
	// Upstream is the name of nginx's upstream block.
	Upstream string
	// Servers are the ready endpoints, HOST:PORT, sorted; none means 503.
	Servers []string
}

// Prefix is the path without its trailing slash, for X-Forwarded-Prefix.
func (r ingressRoute) Prefix() string { return strings.TrimSuffix(r.Path, "/") }

// ingressConfig is everything nginx.conf is rendered from.
type ingressConfig struct {
	Dir    string // the ingress directory: pid file, logs, temp paths
	Listen string // HOST:PORT
	Routes []ingressRoute
}

var ingressPathRE = regexp.MustCompile(`^/([A-Za-z0-9_~-][A-Za-z0-9._~-]*/)*$`)

// ingressPath checks an annotation's value and returns the location prefix:
// "/demo" and "/demo/" both give "/demo/".
func ingressPath(v string) (string, error) {
	p := strings.TrimSpace(v)
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	if !ingressPathRE.MatchString(p) {
		return "", fmt.Errorf("%s %q: must be a path such as /demo: segments of letters, digits, '-', '_', '~' and '.' (not leading)", IngressPathAnnotation, v)
	}
	if p == "/healthz/" {
		return "", fmt.Errorf("%s %q: /healthz is the ingress's own health check", IngressPathAnnotation, v)
	}
	return p, nil
}

// endpointReady follows the EndpointSlice API: a nil ready condition is to
// be read as ready; a terminating endpoint takes no new requests.
func endpointReady(ep discoveryv1.Endpoint) bool {
	c := ep.Conditions
	return (c.Ready == nil || *c.Ready) && (c.Terminating == nil || !*c.Terminating)
}

// slicePort finds, in an EndpointSlice, the port that the Service port sp
// targets: slices name their ports after the Service's.
func slicePort(sl *discoveryv1.EndpointSlice, sp corev1.ServicePort) (int, bool) {
	for _, p := range sl.Ports {
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		if name == sp.Name && proto == corev1.ProtocolTCP && p.Port != nil && *p.Port > 0 {
			return int(*p.Port), true
		}
	}
	return 0, false
}

// ingressRoutes computes the routes of the annotated Services from their
// EndpointSlices, sorted by path, and says why any annotated Service got no
// route.
func ingressRoutes(services []*corev1.Service, slices []*discoveryv1.EndpointSlice) ([]ingressRoute, []string) {
	bySvc := map[string][]*discoveryv1.EndpointSlice{}
	for _, sl := range slices {
		if name := sl.Labels[discoveryv1.LabelServiceName]; name != "" {
			bySvc[sl.Namespace+"/"+name] = append(bySvc[sl.Namespace+"/"+name], sl)
		}
	}
	svcs := make([]*corev1.Service, 0, len(services))
	for _, s := range services {
		if _, ok := s.Annotations[IngressPathAnnotation]; ok {
			svcs = append(svcs, s)
		}
	}
	// Oldest first: the oldest claim on a path keeps it.
	sort.Slice(svcs, func(i, j int) bool {
		a, b := svcs[i], svcs[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	var routes []ingressRoute
	var problems []string
	claimed := map[string]string{}
	for _, svc := range svcs {
		key := svc.Namespace + "/" + svc.Name
		path, err := ingressPath(svc.Annotations[IngressPathAnnotation])
		if err != nil {
			problems = append(problems, fmt.Sprintf("Service %s: %v", key, err))
			continue
		}
		if other, taken := claimed[path]; taken {
			problems = append(problems, fmt.Sprintf("Service %s: path %s already routes to the older Service %s", key, path, other))
			continue
		}
		if svc.Spec.Type == corev1.ServiceTypeExternalName || len(svc.Spec.Ports) == 0 {
			problems = append(problems, fmt.Sprintf("Service %s: has no port to route to", key))
			continue
		}
		sp := svc.Spec.Ports[0]
		if sp.Protocol != "" && sp.Protocol != corev1.ProtocolTCP {
			problems = append(problems, fmt.Sprintf("Service %s: its first port is %s; the ingress proxies HTTP over TCP", key, sp.Protocol))
			continue
		}
		claimed[path] = key
		// Namespaces and names never hold '_', so the name is unique.
		r := ingressRoute{Path: path, Service: key, Upstream: "svc_" + svc.Namespace + "_" + svc.Name}
		seen := map[string]bool{}
		for _, sl := range bySvc[key] {
			if sl.AddressType != discoveryv1.AddressTypeIPv4 && sl.AddressType != discoveryv1.AddressTypeIPv6 {
				continue
			}
			port, ok := slicePort(sl, sp)
			if !ok {
				continue
			}
			for _, ep := range sl.Endpoints {
				if !endpointReady(ep) || len(ep.Addresses) == 0 {
					continue
				}
				// Only the first address counts (as for kube-proxy).
				a, err := netip.ParseAddr(ep.Addresses[0])
				if err != nil {
					continue
				}
				hp := net.JoinHostPort(a.String(), strconv.Itoa(port))
				if !seen[hp] {
					seen[hp] = true
					r.Servers = append(r.Servers, hp)
				}
			}
		}
		sort.Strings(r.Servers)
		routes = append(routes, r)
	}
	sort.Slice(routes, func(i, j int) bool { return routes[i].Path < routes[j].Path })
	return routes, problems
}

var nginxConfTemplate = template.Must(template.New("nginx.conf").Parse(`# The faultline sandbox's ingress. Written by ` + "`faultline sandbox ingress-sync`" + ` from
# the Services annotated {{.Annotation}} and their EndpointSlices,
# rewritten on every change: do not edit.
# config {{.Hash}}
daemon off;
worker_processes auto;
pid {{.Dir}}/nginx.pid;
lock_file {{.Dir}}/nginx.lock;
# stderr is the component's log (logs/ingress.log in the sandbox).
error_log stderr warn;

events {
    worker_connections 4096;
}

http {
    log_format upstreams '$remote_addr [$time_local] "$request" $status $body_bytes_sent '
                         'upstream=$upstream_addr upstream_status=$upstream_status '
                         'request_time=$request_time upstream_time=$upstream_response_time';
    access_log {{.Dir}}/access.log upstreams buffer=64k flush=1s;
    # Every path nginx writes is inside the sandbox's directory.
    client_body_temp_path {{.Dir}}/tmp/body;
    proxy_temp_path {{.Dir}}/tmp/proxy;
    fastcgi_temp_path {{.Dir}}/tmp/fastcgi;
    uwsgi_temp_path {{.Dir}}/tmp/uwsgi;
    scgi_temp_path {{.Dir}}/tmp/scgi;
    default_type text/plain;

    # No retry on another endpoint: the sandbox ingress reports failures as
    # one upstream attempt sees them, the raw signal a gate needs. Retries
    # (nginx's default "error timeout") would hide a refused endpoint only
    # when a healthy peer exists, and show it when none does.
    proxy_next_upstream off;
    proxy_connect_timeout 2s;
    proxy_read_timeout 30s;
    # No keepalive toward upstreams (no "keepalive" in the upstream blocks,
    # HTTP/1.0, nginx's default): every request opens a fresh connection,
    # so an endpoint that stopped listening is refused at once.
    proxy_http_version 1.0;
{{range .Routes}}{{if .Servers}}
    # The ready endpoints of Service {{.Service}}. max_fails=0 keeps an
    # endpoint that failed in the rotation: nginx would otherwise skip it
    # for 10 s, which hides failures as retries do.
    upstream {{.Upstream}} {
{{range .Servers}}        server {{.}} max_fails=0;
{{end}}    }
{{end}}{{end}}
    server {
        listen {{.Listen}};

        location = /healthz {
            access_log off;
            add_header X-Faultline-Ingress-Config "{{.Hash}}" always;
            return 200 "ok\n";
        }
{{range .Routes}}
        # {{.Path}} -> Service {{.Service}}{{if .Servers}} ({{len .Servers}} ready endpoint(s)), prefix stripped{{else}}: no ready endpoint{{end}}
        location {{.Path}} {
{{- if .Servers}}
            proxy_pass http://{{.Upstream}}/;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
{{- if .Prefix}}
            proxy_set_header X-Forwarded-Prefix {{.Prefix}};
{{- end}}
{{- else}}
            return 503 "no ready endpoints for Service {{.Service}}\n";
{{- end}}
        }
{{end}}{{if not .HasRoot}}
        location / {
            return 404 "no sandbox ingress route for this path; route one with the Service annotation {{.Annotation}}: /PATH\n";
        }
{{end}}    }
}
`))

// renderIngressConf renders nginx.conf and returns it with its hash, which
// the configuration serves in a header of /healthz so that ingress-sync can
// tell when nginx runs it.
func renderIngressConf(c ingressConfig) ([]byte, string, error) {
	hasRoot := false
	for _, r := range c.Routes {
		hasRoot = hasRoot || r.Path == "/"
	}
	render := func(hash string) ([]byte, error) {
		var b bytes.Buffer
		err := nginxConfTemplate.Execute(&b, struct {
			Dir, Listen, Hash, Annotation string
			Routes                        []ingressRoute
			HasRoot                       bool
		}{c.Dir, c.Listen, hash, IngressPathAnnotation, c.Routes, hasRoot})
		return b.Bytes(), err
	}
	unhashed, err := render("")
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(unhashed)
	hash := hex.EncodeToString(sum[:6])
	b, err := render(hash)
	return b, hash, err
}

// startIngress runs nginx on the sandbox bridge with no route yet, then
// ingress-sync, which routes the annotated Services; it returns the
// ingress's URL once the routes of the Services that exist are live.
func (s *State) startIngress(ctx context.Context, p Plan) (string, error) {
	l := newIngressLayout(s.Config.Dir())
	// nginx makes its temp directories but not their parent.
	if err := os.MkdirAll(l.tmp(), 0o755); err != nil {
		return "", err
	}
	port, err := freePort(p.BridgeAddr())
	if err != nil {
		return "", err
	}
	listen := netip.AddrPortFrom(p.BridgeAddr(), uint16(port)).String()
	conf, _, err := renderIngressConf(ingressConfig{Dir: l.dir, Listen: listen})
	if err != nil {
		return "", err
	}
	if err := writeFileAtomic(l.conf(), conf); err != nil {
		return "", err
	}
	if err := validateNginxConf(nginxBinary, l, l.conf()); err != nil {
		return "", fmt.Errorf("%s: %w", IngressComponent, err)
	}
	r, err := s.start(procSpec{name: IngressComponent, bin: nginxBinary, ports: []int{port}, args: l.nginxArgs(l.conf())})
	if err != nil {
		return "", err
	}
	url := "http://" + listen
	if err := r.waitReady(ctx, 30*time.Second, httpOK(http.DefaultClient, url+"/healthz", "")); err != nil {
		return "", err
	}
	syncPort, err := freePort(loopback)
	if err != nil {
		return "", err
	}
	sync, err := s.start(procSpec{name: IngressSyncComponent, bin: s.faultlineBinary(), ports: []int{syncPort}, args: []string{
		"sandbox", "ingress-sync", "--kubeconfig=" + filepath.Join(s.Config.Dir(), "kubeconfig"), "--sandbox-dir=" + s.Config.Dir(),
		"--ingress=" + listen, fmt.Sprintf("--listen=127.0.0.1:%d", syncPort), "--nginx=" + nginxBinary,
	}})
	if err != nil {
		return "", err
	}
	if err := sync.waitReady(ctx, 30*time.Second, httpOK(http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/readyz", syncPort), "")); err != nil {
		return "", err
	}
	return url, nil
}
