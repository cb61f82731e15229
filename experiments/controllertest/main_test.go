// Package controllertest is the controller's tier between the unit tests
// and the sandbox: the Experiment and Schedule controllers, wired as the
// faultline-controller binary wires them, against a real API server and
// etcd (envtest, with the sandbox's own binaries from make tools), without
// root, nodes or agents. An agent that reports as a real one does stands
// in for the nodes' agents.
package controllertest

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/controller"
	"faultline.dev/faultline/sandbox"
)

// Namespace is faultline's own in these tests: the kill switch lives there.
const Namespace = "faultline-system"

var (
	cfg *rest.Config
	k8s client.Client
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	assets := sandbox.ToolsDir()
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "deploy", "crds"), filepath.Join("..", "..", "deploy", "chaosmesh", "crds")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	var err error
	if cfg, err = env.Start(); err != nil {
		// A start that failed after the control plane came up (a CRD the
		// API server refuses) leaves etcd and the API server running.
		_ = env.Stop()
		// Never a quiet skip: without the binaries this tier cannot run.
		fmt.Fprintf(os.Stderr, "envtest: %v\n(it runs the sandbox's etcd and kube-apiserver from %s: build them with `make tools`)\n", err, assets)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "envtest stop:", err)
		}
	}()
	defer func() {
		if kubeconfig != "" {
			_ = os.Remove(kubeconfig)
		}
	}()
	if err := installPolicy(env.KubeConfig); err != nil {
		fmt.Fprintln(os.Stderr, "the chart's objectives policy:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := startController(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "controller:", err)
		return 1
	}
	go runAgent(ctx, k8s)
	return m.Run()
}

// startController runs the controllers as faultline-controller does, with
// short waits for recovery.
func startController(ctx context.Context) error {
	// Quiet unless asked: the controller logs every step it retries.
	logTo := io.Discard
	if os.Getenv("FAULTLINE_TEST_LOG") != "" {
		logTo = os.Stderr
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(logTo)))
	scheme, err := controller.NewScheme()
	if err != nil {
		return err
	}
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	for _, ns := range []string{Namespace, v1alpha1.DefaultAgentNamespace} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	opts := controller.Options{Namespace: Namespace, RecoveryTimeout: 10 * time.Second, ReportGrace: 5 * time.Second, Metrics: promclient.NewRegistry()}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, Cache: controller.CacheOptions(opts)})
	if err != nil {
		return err
	}
	if err := controller.Setup(ctx, mgr, cfg, opts); err != nil {
		return err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	return nil
}
