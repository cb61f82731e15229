// Command faultline-agent carries out its node's FaultAssignment. It
// enforces every fault's deadline by its own clock from its on-node ledger,
// so a node cut off from the API server still recovers on time, and a
// restarted agent recovers or resumes whatever its predecessor left.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/nodeagent"
	"faultline.dev/faultline/injectors/agent"
	"faultline.dev/faultline/injectors/disklatency"
	"faultline.dev/faultline/injectors/ledger"
	"faultline.dev/faultline/injectors/memstress"
	"faultline.dev/faultline/injectors/netloss"
)

func main() {
	// The memory stressor is this binary, so that nothing else needs
	// installing on the node.
	if len(os.Args) > 1 && os.Args[1] == memstress.StressorCommand {
		os.Exit(memstress.StressorMain(os.Args[2:]))
	}
	var node, ledgerDir, metricsAddr, podsCgroup string
	var namespace string
	var identity bool
	flag.StringVar(&node, "node", os.Getenv("NODE_NAME"), "the node this agent serves (env NODE_NAME)")
	flag.StringVar(&ledgerDir, "ledger-dir", "/var/lib/faultline/agent", "the on-node ledger's directory; it must survive the agent")
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "where Prometheus metrics are served (0 disables)")
	flag.StringVar(&podsCgroup, "pods-cgroup", "/kubepods", "the kubelet's pod cgroup (its cgroup root plus kubepods): node memory pressure is made under it, where the kubelet counts it;\n"+
		"auto finds it from this agent's own cgroup when it runs in a pod (the chart's DaemonSet)")
	flag.StringVar(&namespace, "agent-namespace", v1alpha1.DefaultAgentNamespace, "the namespace of the nodes' FaultAssignments and agent identities (the controller's --agent-namespace)")
	flag.BoolVar(&identity, "node-identity", false, "act as this node's own ServiceAccount in --agent-namespace (faultline-agent-NODE, made by the controller), whose token\n"+
		"the DaemonSet's shared one may ask for; RBAC then lets this agent read its own node's FaultAssignment and no other.\n"+
		"Without it: act with the credentials given (the sandbox's agent processes)")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	logger := ctrl.Log.WithName("agent").WithValues("node", node)
	if node == "" {
		fmt.Fprintln(os.Stderr, "--node is required (or NODE_NAME)")
		os.Exit(2)
	}
	if podsCgroup == "auto" {
		p, err := memstress.PodsCgroupOf("/proc/self/cgroup")
		if err != nil {
			fmt.Fprintln(os.Stderr, "--pods-cgroup=auto:", err)
			os.Exit(2)
		}
		podsCgroup = p
		logger.Info("found the kubelet's pod cgroup from this agent's own", "podsCgroup", p)
	}
	l, err := ledger.Open(ledgerDir)
	if err != nil {
		logger.Error(err, "ledger")
		os.Exit(1)
	}
	engine := &agent.Engine{Ledger: l, Clock: clock.RealClock{}, Factories: nodeagent.Factories}
	ctx := ctrl.SetupSignalHandler()
	// Tracers live in this process: on SIGTERM they detach before it exits
	// (the kernel would detach them at the exit too, but a held call is
	// released now and the ledger entry stays Injected for the next agent).
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := disklatency.Shutdown(sctx); err != nil {
			logger.Error(err, "detaching tracers")
		}
	}()

	if l.Corrupt != "" {
		logger.Error(nil, "the ledger was corrupt and was moved aside", "file", l.Corrupt)
	}
	// Deadlines first, from the ledger alone: nothing below needs the API
	// server for a fault to end on time.
	if err := engine.Resume(ctx); err != nil {
		logger.Error(err, "resume from the ledger")
	}
	// A fault table in this node's namespace that no active ledger entry
	// knows (a lost or corrupt ledger) has no deadline anyone enforces.
	if orphans, err := sweepOrphans(l); err != nil {
		logger.Error(err, "sweep for faults the ledger does not know")
	} else if len(orphans) > 0 {
		logger.Info("removed faults the ledger did not know", "tables", orphans)
	}
	// The same for stressors and their cgroups, found by the state they
	// keep beside the ledger (pid and start time, never a name).
	if swept, err := memstress.Sweep(ctx, ledgerDir, func(id string) bool {
		en, ok := l.Get(id)
		return ok && en.Active()
	}); err != nil {
		logger.Error(err, "sweep for stressors the ledger does not know")
	} else if len(swept) > 0 {
		logger.Info("removed stressors the ledger did not know", "faults", swept)
	}
	poke := make(chan struct{}, 1)
	go engine.RunDeadlines(ctx, poke, func(err error) { logger.Error(err, "deadline") })

	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		logger.Error(err, "scheme")
		os.Exit(1)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		logger.Error(err, "no cluster to talk to")
		os.Exit(1)
	}
	logger.Info("starting faultline-agent", "ledger", filepath.Join(ledgerDir, "ledger.json"))
	// Short timeouts: a cut-off node must not hang its agent's reports.
	cfg.Timeout = 10 * time.Second
	// A restarted agent on a node that is cut off cannot even start its
	// manager (discovery fails): keep trying, while the deadline loop above
	// goes on recovering faults by itself.
	for {
		err := nodeagent.Run(ctx, cfg, nodeagent.RunOptions{Node: node, Namespace: namespace, Identity: identity, Scheme: scheme, MetricsAddr: metricsAddr,
			Engine: engine, Poke: poke, Env: nodeagent.NodeEnv{LedgerDir: ledgerDir, PodsCgroup: podsCgroup}})
		if ctx.Err() != nil {
			return
		}
		logger.Error(err, "cannot reach the API server; deadlines are still enforced from the ledger; retrying")
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

// sweepOrphans removes the faultline tables of this namespace that no
// active ledger entry accounts for.
func sweepOrphans(l *ledger.Ledger) ([]string, error) {
	tables, err := netloss.Tables("")
	if err != nil {
		return nil, err
	}
	active := map[string]bool{}
	for _, en := range l.List() {
		if en.Active() {
			active[netloss.TablePrefix+en.ID] = true
		}
	}
	var removed []string
	var errs []error
	for _, t := range tables {
		if active[t] {
			continue
		}
		if err := netloss.Recover(netloss.Spec{ID: strings.TrimPrefix(t, netloss.TablePrefix)}); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, t)
	}
	return removed, errors.Join(errs...)
}
