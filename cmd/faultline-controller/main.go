// Command faultline-controller runs faultline's Experiment and Schedule
// controllers.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/controller"
)

func main() {
	var (
		namespace, metricsAddr, probeAddr string
		agentRole, agentNamespace         string
		leaderElect, drain                bool
		recoveryTimeout, reportGrace      time.Duration
		drainTimeout                      time.Duration
		qps                               float64
		burst                             int
	)
	flag.StringVar(&namespace, "namespace", envOr("POD_NAMESPACE", "faultline-system"), "faultline's own namespace: never a target by default, and home of the kill switch ConfigMap "+controller.KillSwitch)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "where Prometheus metrics are served (0 disables)")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "where /healthz and /readyz are served (0 disables)")
	flag.BoolVar(&leaderElect, "leader-elect", false, "elect a leader so that several replicas can run")
	flag.DurationVar(&recoveryTimeout, "recovery-timeout", 10*time.Minute, "how long after the faults end to wait for nodes and workloads to recover before judging")
	flag.DurationVar(&reportGrace, "report-grace", 30*time.Second, "how long past a deadline an agent may take to report its recovery")
	flag.StringVar(&agentRole, "agent-role", "", "give each node's agent an identity of its own: a ServiceAccount "+v1alpha1.AgentIdentityPrefix+"NODE in --agent-namespace, and a Role\n"+
		"there with this ClusterRole's rules restricted to the node's own FaultAssignment, bound to it (the chart passes its agent ClusterRole,\n"+
		"which owns them, so uninstalling removes them); empty: none, for agents that run with their own credentials")
	flag.StringVar(&agentNamespace, "agent-namespace", v1alpha1.DefaultAgentNamespace, "the namespace of the nodes' FaultAssignments and of the agents' identities (--agent-role), which must\n"+
		"hold nothing else: the agents' shared account may ask for tokens there. It must exist; the agents' --agent-namespace must match")
	flag.BoolVar(&drain, "drain", false, "do not run the controllers: abort every running experiment, wait until every fault is recovered\n"+
		"(the agents report it), and exit 0; exit 1 naming what is left after --drain-timeout. The chart's pre-delete hook runs it,\n"+
		"so that uninstalling never removes the agents while they hold a fault")
	flag.DurationVar(&drainTimeout, "drain-timeout", 5*time.Minute, "with --drain, how long to wait for every fault to be recovered")
	flag.Float64Var(&qps, "kube-api-qps", 200, "the requests per second the controller allows itself toward the API server (client-side rate limit). An\n"+
		"experiment on N nodes writes N FaultAssignments at its start (16 at a time) and N again to recover early, and each node's\n"+
		"identity is 3 objects: 1,000 nodes take 5 s of writes at 200 (make bench-fanout measures it); lower it to spread them")
	flag.IntVar(&burst, "kube-api-burst", 400, "the requests the controller may send at once above --kube-api-qps")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	scheme, err := controller.NewScheme()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "no cluster to talk to (--kubeconfig or KUBECONFIG, or in-cluster)")
		os.Exit(1)
	}
	cfg.QPS, cfg.Burst = float32(qps), burst
	if drain {
		c, err := client.New(cfg, client.Options{Scheme: scheme})
		if err == nil {
			err = controller.Drain(ctrl.SetupSignalHandler(), c, controller.DrainOptions{Timeout: drainTimeout, Out: os.Stdout, AgentNamespace: agentNamespace})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "drain:", err)
			os.Exit(1)
		}
		return
	}
	copts := controller.Options{
		Namespace: namespace, RecoveryTimeout: recoveryTimeout, ReportGrace: reportGrace,
		AgentRole: agentRole, AgentNamespace: agentNamespace, Metrics: ctrlmetrics.Registry,
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "faultline-controller",
		LeaderElectionNamespace: namespace,
		Cache:                   controller.CacheOptions(copts),
	})
	if err != nil {
		log.Error(err, "manager")
		os.Exit(1)
	}
	ctx := ctrl.SetupSignalHandler()
	if err := controller.Setup(ctx, mgr, cfg, copts); err != nil {
		log.Error(err, "controllers")
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
