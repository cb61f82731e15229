package sandbox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// freePort asks the kernel for a port that is free on addr.
func freePort(addr netip.Addr) (int, error) {
	l, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func freePorts(addr netip.Addr, n int) ([]int, error) {
	// Hold every listener until all are chosen so no port is handed out twice.
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

var loopback = netip.MustParseAddr("127.0.0.1")

// identities of the cluster's users, all authenticated by static tokens.
type identities struct {
	admin, controllerManager, scheduler, kubeProxy, kwok identity
	nodes                                                map[string]identity
}

func newIdentities(realNodes []string) identities {
	ids := identities{
		admin:             newIdentity("faultline-admin", "system:masters"),
		controllerManager: newIdentity("system:kube-controller-manager"),
		scheduler:         newIdentity("system:kube-scheduler"),
		kubeProxy:         newIdentity("system:kube-proxy"),
		// kwok speaks for many nodes at once, which NodeRestriction would
		// refuse to a node identity.
		kwok:  newIdentity("faultline-kwok", "system:masters"),
		nodes: map[string]identity{},
	}
	for _, n := range realNodes {
		ids.nodes[n] = newIdentity("system:node:"+n, "system:nodes")
	}
	return ids
}

func (ids identities) all() []identity {
	out := []identity{ids.admin, ids.controllerManager, ids.scheduler, ids.kubeProxy, ids.kwok}
	for _, id := range ids.nodes {
		out = append(out, id)
	}
	return out
}

// controlPlane holds what the node components need to reach the API server.
type controlPlane struct {
	server  string // https://bridge-address:port
	pki     *pki
	ids     identities
	kubecfg map[string]string // identity user -> kubeconfig path
}

func (cp *controlPlane) kubeconfigFor(dir string, id identity) (string, error) {
	if p, ok := cp.kubecfg[id.user]; ok {
		return p, nil
	}
	p := filepath.Join(dir, "kubeconfig-"+strings.NewReplacer(":", "-").Replace(id.user))
	if err := cp.pki.writeKubeconfig(p, cp.server, id); err != nil {
		return "", err
	}
	cp.kubecfg[id.user] = p
	return p, nil
}

// startControlPlane brings up etcd, the API server, the controller manager
// and the scheduler, each on free ports, and waits until each is healthy.
func (s *State) startControlPlane(ctx context.Context, p Plan, progress func(string, ...any)) (*controlPlane, error) {
	dir := s.Config.Dir()
	pk, err := newPKI(filepath.Join(dir, "pki"))
	if err != nil {
		return nil, err
	}
	if err := writeKey(pk.path("ca.key"), pk.caKey); err != nil {
		return nil, err
	}
	bridge := p.BridgeAddr().String()
	if err := pk.issue("apiserver", "kube-apiserver", nil, []string{
		bridge, "127.0.0.1", p.KubernetesServiceIP().String(), "localhost",
		"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
	}, x509.ExtKeyUsageServerAuth); err != nil {
		return nil, err
	}
	if err := pk.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, nil, x509.ExtKeyUsageClientAuth); err != nil {
		return nil, err
	}
	if err := pk.serviceAccountKey(); err != nil {
		return nil, err
	}
	var realNodes []string
	for i := 0; i < s.Config.RealNodes; i++ {
		realNodes = append(realNodes, RealNodeName(i))
	}
	ids := newIdentities(realNodes)
	if err := writeTokenFile(pk.path("tokens.csv"), ids.all()); err != nil {
		return nil, err
	}

	// etcd: client, peer and metrics on loopback.
	ep, err := freePorts(loopback, 3)
	if err != nil {
		return nil, err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ep[0])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ep[1])
	etcd, err := s.start(procSpec{name: "etcd", bin: tool("etcd"), ports: ep, args: []string{
		"--name=sandbox", "--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=sandbox=" + peerURL,
		fmt.Sprintf("--listen-metrics-urls=http://127.0.0.1:%d", ep[2]),
		"--log-level=warn",
	}})
	if err != nil {
		return nil, err
	}
	if err := etcd.waitReady(ctx, 30*time.Second, httpOK(http.DefaultClient, etcdURL+"/health", "")); err != nil {
		return nil, err
	}
	progress("etcd %s ready at %s (metrics on :%d)", EtcdVersion, etcdURL, ep[2])

	apiPort, err := freePort(p.BridgeAddr())
	if err != nil {
		return nil, err
	}
	cp := &controlPlane{server: fmt.Sprintf("https://%s:%d", bridge, apiPort), pki: pk, ids: ids, kubecfg: map[string]string{}}
	apiArgs := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=" + bridge, "--advertise-address=" + bridge, "--secure-port=" + strconv.Itoa(apiPort),
		"--tls-cert-file=" + pk.path("apiserver.crt"), "--tls-private-key-file=" + pk.path("apiserver.key"),
		"--client-ca-file=" + pk.path("ca.crt"),
		"--token-auth-file=" + pk.path("tokens.csv"),
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pk.path("sa.pub"),
		"--service-account-signing-key-file=" + pk.path("sa.key"),
		"--service-cluster-ip-range=" + p.ServiceCIDR().String(),
		"--allow-privileged=true",
		"--kubelet-client-certificate=" + pk.path("apiserver-kubelet-client.crt"),
		"--kubelet-client-key=" + pk.path("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority=" + pk.path("ca.crt"),
		"--kubelet-preferred-address-types=InternalIP",
		"--profiling=false",
	}
	if s.Config.Timings == TimingsFast {
		apiArgs = append(apiArgs, "--default-not-ready-toleration-seconds=30", "--default-unreachable-toleration-seconds=30")
	}
	api, err := s.start(procSpec{name: "kube-apiserver", bin: tool("kube-apiserver"), ports: []int{apiPort}, args: apiArgs})
	if err != nil {
		return nil, err
	}
	client, err := httpsClient(pk.path("ca.crt"))
	if err != nil {
		return nil, err
	}
	if err := api.waitReady(ctx, 60*time.Second, httpOK(client, cp.server+"/readyz", ids.admin.token)); err != nil {
		return nil, err
	}
	progress("kube-apiserver %s ready at %s", KubernetesVersion, cp.server)

	kcmConfig, err := cp.kubeconfigFor(dir, ids.controllerManager)
	if err != nil {
		return nil, err
	}
	schedConfig, err := cp.kubeconfigFor(dir, ids.scheduler)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(loopback, 2)
	if err != nil {
		return nil, err
	}
	kcmArgs := []string{
		"--kubeconfig=" + kcmConfig, "--authentication-kubeconfig=" + kcmConfig, "--authorization-kubeconfig=" + kcmConfig,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(ports[0]),
		"--service-account-private-key-file=" + pk.path("sa.key"),
		"--root-ca-file=" + pk.path("ca.crt"), "--use-service-account-credentials=true",
		"--cluster-signing-cert-file=" + pk.path("ca.crt"), "--cluster-signing-key-file=" + pk.path("ca.key"),
		"--service-cluster-ip-range=" + p.ServiceCIDR().String(),
		"--leader-elect=false", "--kube-api-qps=200", "--kube-api-burst=400",
	}
	if s.Config.Timings == TimingsFast {
		kcmArgs = append(kcmArgs, "--node-monitor-grace-period=20s")
	}
	kcm, err := s.start(procSpec{name: "kube-controller-manager", bin: tool("kube-controller-manager"), ports: ports[:1], args: kcmArgs})
	if err != nil {
		return nil, err
	}
	sched, err := s.start(procSpec{name: "kube-scheduler", bin: tool("kube-scheduler"), ports: ports[1:], args: []string{
		"--kubeconfig=" + schedConfig, "--authentication-kubeconfig=" + schedConfig, "--authorization-kubeconfig=" + schedConfig,
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(ports[1]), "--leader-elect=false",
		"--kube-api-qps=200", "--kube-api-burst=400",
	}})
	if err != nil {
		return nil, err
	}
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec: self-signed healthz only
	if err := kcm.waitReady(ctx, 60*time.Second, httpOK(insecure, fmt.Sprintf("https://127.0.0.1:%d/healthz", ports[0]), "")); err != nil {
		return nil, err
	}
	if err := sched.waitReady(ctx, 60*time.Second, httpOK(insecure, fmt.Sprintf("https://127.0.0.1:%d/healthz", ports[1]), "")); err != nil {
		return nil, err
	}
	grace, tol := "50s", "300s"
	if s.Config.Timings == TimingsFast {
		grace, tol = "20s", "30s"
	}
	progress("kube-controller-manager and kube-scheduler ready (timings %s: node grace %s, unreachable toleration %s)", s.Config.Timings, grace, tol)
	return cp, nil
}

func httpsClient(caFile string) (*http.Client, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, nil
}

// httpOK is a readiness check: GET url answers 200.
func httpOK(c *http.Client, url, token string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s %s", url, resp.Status, strings.TrimSpace(string(body)))
		}
		return nil
	}
}
