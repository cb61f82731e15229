// Command faultline-controller runs faultline's Experiment and Schedule
// controllers.
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"strings"
	"time"

	cm "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"faultline.dev/faultline/analyzers/evictions"
	"faultline.dev/faultline/analyzers/prometheus"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/controller"
	"faultline.dev/faultline/experiments/schedule"
)

func main() {
	var (
		namespace, metricsAddr, probeAddr string
		agentRole, agentNamespace         string
		leaderElect                       bool
		recoveryTimeout, reportGrace      time.Duration
	)
	flag.StringVar(&namespace, "namespace", envOr("POD_NAMESPACE", "faultline-system"), "faultline's own namespace: never a target by default, and home of the kill switch ConfigMap "+controller.KillSwitch)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "where Prometheus metrics are served (0 disables)")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "where /healthz and /readyz are served (0 disables)")
	flag.BoolVar(&leaderElect, "leader-elect", false, "elect a leader so that several replicas can run")
	flag.DurationVar(&recoveryTimeout, "recovery-timeout", 10*time.Minute, "how long after the faults end to wait for nodes and workloads to recover before judging")
	flag.DurationVar(&reportGrace, "report-grace", 30*time.Second, "how long past a deadline an agent may take to report its recovery")
	flag.StringVar(&agentRole, "agent-role", "", "give each node's agent an identity of its own: a ServiceAccount "+v1alpha1.AgentIdentityPrefix+"NODE in --agent-namespace, bound to\n"+
		"this ClusterRole's rules restricted to the node's own FaultAssignment (the chart passes its agent ClusterRole, which owns them,\n"+
		"so uninstalling removes them); empty: none, for agents that run with their own credentials")
	flag.StringVar(&agentNamespace, "agent-namespace", "faultline-agents", "the namespace of the agents' ServiceAccounts (--agent-role), which must hold nothing else:\n"+
		"the agents' shared account may ask for tokens there")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	// Chaos Mesh's kinds, for spec.engine: chaos-mesh: only read and
	// written, never watched (their CRDs may be absent).
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, cm.AddToScheme} {
		if err := add(scheme); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "no cluster to talk to (--kubeconfig or KUBECONFIG, or in-cluster)")
		os.Exit(1)
	}
	// The eviction analyzer watches every pod: keep only what it reads.
	byObject := map[client.Object]cache.ByObject{&corev1.Pod{}: {Transform: evictions.Strip}}
	if agentRole != "" {
		maps.Copy(byObject, controller.IdentityCache(agentNamespace))
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "faultline-controller",
		LeaderElectionNamespace: namespace,
		Cache:                   cache.Options{ByObject: byObject},
	})
	if err != nil {
		log.Error(err, "manager")
		os.Exit(1)
	}
	ctx := ctrl.SetupSignalHandler()
	// Ask for every informer the controller reads now, so they sync before
	// the first experiment rather than lazily in its way.
	for _, obj := range []client.Object{&appsv1.ReplicaSet{}, &appsv1.Deployment{}, &discoveryv1.EndpointSlice{}, &policyv1.PodDisruptionBudget{}, &corev1.Namespace{}, &v1alpha1.FaultAssignment{}, &v1alpha1.Schedule{}} {
		// CRDs installed a moment ago may not be served yet: retry a while.
		var err error
		for try := 0; try < 30; try++ {
			if _, err = mgr.GetCache().GetInformer(ctx, obj); err == nil {
				break
			}
			time.Sleep(time.Second)
		}
		if err != nil {
			log.Error(err, "informer (are faultline's CRDs installed?)")
			os.Exit(1)
		}
	}
	analysis := controller.NewAnalysis()
	// prometheus.scrape.apiServer reads the API server's own /metrics with
	// the controller's credentials.
	if hc, err := rest.HTTPClientFor(cfg); err == nil {
		analysis.APIServer = &prometheus.Target{URL: strings.TrimSuffix(cfg.Host, "/") + "/metrics", Client: hc}
	} else {
		log.Error(err, "no client for the API server's /metrics; prometheus.scrape.apiServer will be refused")
	}
	if err := analysis.Setup(ctx, mgr.GetCache()); err != nil {
		log.Error(err, "analyzers")
		os.Exit(1)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		log.Error(err, "discovery client")
		os.Exit(1)
	}
	r := &controller.ExperimentReconciler{
		Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorderFor("faultline-controller"), //nolint:staticcheck // the new recorder is not on the Manager interface yet
		Clock: clock.RealClock{}, Namespace: namespace, Analysis: analysis, Metrics: controller.NewMetrics(ctrlmetrics.Registry),
		RecoveryTimeout: recoveryTimeout, ReportGrace: reportGrace, Discovery: disc,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		log.Error(err, "controller")
		os.Exit(1)
	}
	sr := &schedule.Reconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("faultline-schedule"), //nolint:staticcheck // as above
		Clock: clock.RealClock{}, Metrics: schedule.NewMetrics(ctrlmetrics.Registry),
	}
	if err := sr.SetupWithManager(mgr); err != nil {
		log.Error(err, "schedule controller")
		os.Exit(1)
	}
	if agentRole != "" {
		ir := &controller.AgentIdentityReconciler{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Namespace: agentNamespace, Role: agentRole}
		if err := ir.SetupWithManager(mgr); err != nil {
			log.Error(err, "agent identity controller")
			os.Exit(1)
		}
	}
	// Once, as the leader: an upgrade from one FaultAssignment per
	// experiment and node leaves the old ones, which nothing reads.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		gone, err := controller.SweepOldAssignments(ctx, mgr.GetAPIReader(), mgr.GetClient())
		if err != nil {
			log.Error(err, "sweeping FaultAssignments of the old shape")
		} else if len(gone) > 0 {
			log.Info("deleted FaultAssignments of the old shape (one per experiment and node)", "names", gone)
		}
		return nil
	})); err != nil {
		log.Error(err, "sweep")
		os.Exit(1)
	}
	_ = mgr.AddHealthzCheck("healthz", healthz.Ping)
	_ = mgr.AddReadyzCheck("readyz", healthz.Ping)
	log.Info("starting faultline-controller", "namespace", namespace)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
