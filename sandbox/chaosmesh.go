package sandbox

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"faultline.dev/faultline/deploy"
)

// ChaosMeshNamespace is where Chaos Mesh's controller manager keeps its
// own objects in the sandbox.
const ChaosMeshNamespace = "chaos-mesh"

// ChaosMeshComponent is the controller manager's component name.
const ChaosMeshComponent = "chaos-controller-manager"

// startChaosMesh installs Chaos Mesh's CRDs, every one of them (its
// manager watches all its kinds and stops when one is missing), made by
// controller-gen over its API module at `make tools`, and runs its
// controller manager on the host with the admin kubeconfig. Its webhooks
// are served but never registered: the sandbox's API server does not call
// them, and faultline's objects pass Chaos Mesh's own validation in its
// unit tests.
func (s *State) startChaosMesh(ctx context.Context, cs kubernetes.Interface, progress *Progress) error {
	crdDir := tool("chaos-mesh-crds")
	files, err := filepath.Glob(filepath.Join(crdDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no Chaos Mesh CRDs in %s: build them with `make tools`", crdDir)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		return err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := deploy.Apply(ctx, cfg, b); err != nil {
			return fmt.Errorf("install Chaos Mesh CRD %s: %w", filepath.Base(f), err)
		}
	}
	served := func() bool {
		rl, err := cs.Discovery().ServerResourcesForGroupVersion("chaos-mesh.org/v1alpha1")
		if err != nil {
			return false
		}
		kinds := 0
		for _, r := range rl.APIResources {
			if !strings.Contains(r.Name, "/") { // not a status subresource
				kinds++
			}
		}
		return kinds >= len(files)
	}
	for deadline := time.Now().Add(30 * time.Second); !served(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("Chaos Mesh's %d CRDs are not served 30s after they were installed", len(files))
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ChaosMeshNamespace}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	certs := filepath.Join(s.Config.Dir(), "chaos-mesh", "certs")
	if err := selfSignedServing(certs, "chaos-mesh-webhook"); err != nil {
		return err
	}
	ports, err := freePorts(loopback, 2)
	if err != nil {
		return err
	}
	p, err := s.start(procSpec{name: ChaosMeshComponent, bin: tool("chaos-controller-manager"), ports: ports, env: []string{
		"KUBECONFIG=" + s.Kubeconfig, "NAMESPACE=" + ChaosMeshNamespace, "CERTS_DIR=" + certs,
		"WEBHOOK_HOST=127.0.0.1", fmt.Sprintf("WEBHOOK_PORT=%d", ports[0]),
		"METRICS_HOST=127.0.0.1", fmt.Sprintf("METRICS_PORT=%d", ports[1]),
		// One manager, no chaos-daemon to reach over mTLS.
		"ENABLE_LEADER_ELECTION=false", "SECURITY_MODE=false", "CHAOSD_SECURITY_MODE=false",
	}})
	if err != nil {
		return err
	}
	if err := p.waitReady(ctx, 90*time.Second, httpOK(http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[1]), "")); err != nil {
		return err
	}
	progress.Printf("chaos mesh: %d CRDs installed, controller manager running (no chaos-daemon: PodChaos acts, the others are only recorded)", len(files))
	return nil
}

// selfSignedServing writes tls.crt and tls.key for a server nobody dials
// by name: Chaos Mesh's webhook server will not start without them.
func selfSignedServing(dir, cn string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, "tls.crt"), "CERTIFICATE", der); err != nil {
		return err
	}
	return writeKey(filepath.Join(dir, "tls.key"), key)
}
