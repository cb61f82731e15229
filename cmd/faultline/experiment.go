package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"faultline.dev/faultline/analyzers/measures"
	"faultline.dev/faultline/analyzers/slo"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/report"
)

const exitAborted = 3

// clusterFlags are how the experiment commands reach a cluster.
type clusterFlags struct {
	kubeconfig, namespace string
	// as and asGroups act as another user, as kubectl --as does: see
	// what a namespace-level user would be refused.
	as       string
	asGroups []string
}

func (f *clusterFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig to use (default: $KUBECONFIG, then ~/.kube/config)")
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", "namespace (default: the kubeconfig's, else default)")
	cmd.Flags().StringVar(&f.as, "as", "", "act as this user, as kubectl --as does (your kubeconfig's user must be allowed to impersonate)")
	cmd.Flags().StringArrayVar(&f.asGroups, "as-group", nil, "act as a member of this group, with --as; repeat it for several")
}

// config is the cluster's REST config and the namespace to use.
func (f *clusterFlags) config() (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if f.kubeconfig != "" {
		rules.ExplicitPath = f.kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{}
	if len(f.asGroups) > 0 && f.as == "" {
		return nil, "", errors.New("--as-group: needs --as (the user whose groups they are)")
	}
	overrides.AuthInfo.Impersonate, overrides.AuthInfo.ImpersonateGroups = f.as, f.asGroups
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("no cluster to talk to: %w (give --kubeconfig, or for the sandbox: --kubeconfig \"$(faultline sandbox kubeconfig)\")", err)
	}
	ns := f.namespace
	if ns == "" {
		if ns, _, err = cc.Namespace(); err != nil || ns == "" {
			ns = "default"
		}
	}
	return cfg, ns, nil
}

func (f *clusterFlags) client() (client.Client, string, error) {
	cfg, ns, err := f.config()
	if err != nil {
		return nil, "", err
	}
	// Kubernetes' own kinds too: the catalog waits for Deployments.
	scheme := runtime.NewScheme()
	if err := errors.Join(v1alpha1.AddToScheme(scheme), clientgoscheme.AddToScheme(scheme)); err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	return c, ns, err
}

// gateFlags are how run and wait follow an experiment to its verdict and
// report it.
type gateFlags struct {
	junit, output, reportPath, reportFmt string
	timeout                              time.Duration
	repFormat                            report.Format
}

func (g *gateFlags) add(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&g.timeout, "timeout", 30*time.Minute, "give up waiting after this long (the experiment goes on; exit 2)")
	cmd.Flags().StringVar(&g.junit, "junit", "", "also write a JUnit XML report, one testcase per objective")
	cmd.Flags().StringVar(&g.reportPath, "report", "", "also write a report once the verdict is in: .html (charts), .md (a PR comment), .xml (JUnit) or .json; see faultline report --help")
	cmd.Flags().StringVar(&g.reportFmt, "report-format", "", "the --report's format when its extension does not tell: html, md, junit or json")
	cmd.Flags().StringVarP(&g.output, "output", "o", "", "print the final Experiment as json or yaml instead of the verdict table")
}

// check refuses, before anything runs, a report that could not be written.
func (g *gateFlags) check() error {
	if g.reportPath == "" {
		return nil
	}
	var err error
	g.repFormat, err = reportFormat(g.reportFmt, g.reportPath)
	return err
}

// gate follows the experiment to its verdict, writes the reports and
// returns the exit code's error.
func (g *gateFlags) gate(cmd *cobra.Command, c client.Client, key types.NamespacedName) error {
	out := cmd.ErrOrStderr()
	final, err := follow(cmd.Context(), c, key, g.timeout, out)
	if err != nil {
		return &exitError{exitInvalid, err}
	}
	if g.junit != "" {
		if err := writeReport(cmd.OutOrStdout(), out, g.junit, report.JUnit, final); err != nil {
			return &exitError{exitInvalid, err}
		}
	}
	if g.reportPath != "" {
		if err := writeReport(cmd.OutOrStdout(), out, g.reportPath, g.repFormat, final); err != nil {
			return &exitError{exitInvalid, err}
		}
	}
	switch g.output {
	case "json":
		b, _ := json.MarshalIndent(final, "", "  ")
		fmt.Fprintln(cmd.OutOrStdout(), string(b))
	case "yaml":
		b, _ := yaml.Marshal(final)
		fmt.Fprint(cmd.OutOrStdout(), string(b))
	default:
		printVerdict(cmd.OutOrStdout(), final)
	}
	return exitFor(final)
}

const exitCodesHelp = `Exit codes, for CI gates:
  0  Passed
  1  Failed (an objective was not met, or could not be measured)
  2  invalid input, or an error before a verdict
  3  Aborted (an abort objective was breached, or someone aborted it)

Ctrl-C asks the controller to abort the experiment, which recovers every
fault at once, and waits for that.`

func newRunCommand() *cobra.Command {
	var (
		file string
		wait bool
		g    gateFlags
		cf   clusterFlags
	)
	cmd := &cobra.Command{
		Use:   "run -f FILE",
		Short: "Run an Experiment and gate on its verdict",
		Long: `run checks the Experiment, creates it exactly as the file writes it (as
kubectl create would), follows it live (phase, elapsed time, what happened,
key measurements) and prints the verdict with each objective.

The file holds one Experiment and nothing else: one verdict, one exit code.
For a file of several documents, check them with faultline validate and
create them with kubectl apply; faultline wait then gates on each.

` + exitCodesHelp,
		Example: `  faultline run -f deploy/examples/node-partition.yaml --junit report.xml
  faultline run -f deploy/examples/node-partition.yaml --report report.html
  faultline run -f exp.yaml --timeout 15m -o json > result.json

  # A CI gate on rolling updates: SIGTERM in a rollout under 200 req/s;
  # exit 1 while the app drops requests, 0 once it drains gracefully.
  kubectl apply -f deploy/examples/rollout-fragile.yaml
  faultline run -f deploy/examples/rollout-sigterm.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, raw, err := readOneExperiment(cmd.Context(), file, cmd.InOrStdin())
			if err != nil {
				return &exitError{exitInvalid, err}
			}
			if err := g.check(); err != nil {
				return &exitError{exitInvalid, err}
			}
			c, ns, err := cf.client()
			if err != nil {
				return &exitError{exitInvalid, err}
			}
			if raw.GetNamespace() == "" {
				raw.SetNamespace(ns)
			}
			if err := c.Create(cmd.Context(), raw); err != nil {
				if apierrors.IsAlreadyExists(err) {
					err = fmt.Errorf("%w (delete it, or set metadata.generateName instead of name)", err)
				}
				return &exitError{exitInvalid, err}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "experiment %s/%s created\n", raw.GetNamespace(), raw.GetName())
			if !wait {
				return nil
			}
			return g.gate(cmd, c, client.ObjectKeyFromObject(raw))
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the Experiment's YAML (- for standard input)")
	_ = cmd.MarkFlagRequired("file")
	cmd.Flags().BoolVar(&wait, "wait", true, "follow the experiment to its verdict")
	g.add(cmd)
	cf.add(cmd)
	return cmd
}

func newWaitCommand() *cobra.Command {
	var (
		g  gateFlags
		cf clusterFlags
	)
	cmd := &cobra.Command{
		Use:   "wait NAME",
		Short: "Follow an Experiment created by someone else (kubectl, Helm, Argo CD, Flux) to its verdict",
		Long: `wait follows an existing Experiment live, as run does once it has created
one, and gates on its verdict: for experiments that reach the cluster
through kubectl apply or a GitOps tool. An experiment that already has its
verdict is reported at once.

` + exitCodesHelp,
		Example: `  kubectl apply -f deploy/examples/node-partition.yaml
  faultline wait node-partition -n default --junit report.xml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.check(); err != nil {
				return &exitError{exitInvalid, err}
			}
			c, ns, err := cf.client()
			if err != nil {
				return &exitError{exitInvalid, err}
			}
			return g.gate(cmd, c, types.NamespacedName{Namespace: ns, Name: args[0]})
		},
	}
	g.add(cmd)
	cf.add(cmd)
	return cmd
}

func exitFor(exp *v1alpha1.Experiment) error {
	msg := fmt.Errorf("experiment %s: %s (%s)", exp.Name, exp.Status.Phase, exp.Status.Message)
	switch exp.Status.Phase {
	case v1alpha1.PhasePassed:
		return nil
	case v1alpha1.PhaseFailed:
		return &exitError{exitFailed, msg}
	case v1alpha1.PhaseAborted:
		return &exitError{exitAborted, msg}
	}
	return &exitError{exitInvalid, msg}
}

// follow prints the timeline as it grows and a status line on each phase
// change or every 15 s, until the experiment ends.
func follow(ctx context.Context, c client.Client, key types.NamespacedName, timeout time.Duration, out io.Writer) (*v1alpha1.Experiment, error) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	start := time.Now()
	deadline := start.Add(timeout)
	shown, lastPhase, lastLine := 0, v1alpha1.Phase("?"), time.Time{}
	aborting, failures := false, 0
	for {
		var exp v1alpha1.Experiment
		if err := c.Get(context.WithoutCancel(ctx), key, &exp); err != nil {
			// A passing failure (the API server restarting) is retried.
			if failures++; failures > 30 || apierrors.IsNotFound(err) {
				return nil, err
			}
			time.Sleep(time.Second)
			continue
		}
		failures = 0
		for ; shown < len(exp.Status.Timeline); shown++ {
			e := exp.Status.Timeline[shown]
			fmt.Fprintf(out, "  %s  %-18s %s\n", e.Time.Format("15:04:05"), e.Reason, e.Message)
		}
		if exp.Status.Phase != lastPhase || time.Since(lastLine) > 15*time.Second {
			fmt.Fprintf(out, "[%5.0fs] %-10s %s\n", time.Since(start).Seconds(), exp.Status.Phase, keyFigures(&exp))
			lastPhase, lastLine = exp.Status.Phase, time.Now()
		}
		if exp.Status.Phase.IsFinal() {
			return &exp, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no verdict after %s; the experiment goes on: faultline describe %s -n %s", timeout, key.Name, key.Namespace)
		}
		select {
		case <-sigs:
			if !aborting {
				aborting = true
				fmt.Fprintln(out, "interrupted: asking the controller to abort and recover every fault (Ctrl-C again to stop waiting)")
				if err := abort(context.WithoutCancel(ctx), c, key); err != nil {
					return nil, err
				}
			} else {
				return nil, errors.New("stopped waiting; the abort goes on in the cluster")
			}
		case <-time.After(time.Second):
		}
	}
}

// keyFigures picks a few measurements for the live line: those the
// objectives read first, then the usual ones.
func keyFigures(exp *v1alpha1.Experiment) string {
	m := exp.Status.Measurements
	var parts []string
	seen := map[string]bool{}
	// Status keys flatten maps with dots: traffic.status["502"] is
	// traffic.status.502.
	var exprs []string
	for _, o := range exp.Spec.Objectives {
		exprs = append(exprs, o.Expr)
	}
	flat := strings.NewReplacer(`["`, ".", `"]`, "", `['`, ".", `']`, "").Replace(strings.Join(exprs, " "))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if slo.Names(flat, k) {
			parts, seen[k] = append(parts, k+"="+m[k]), true
		}
	}
	for _, k := range measures.KeyFigures {
		if v, ok := m[k]; ok && !seen[k] {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, "  ")
}

func abort(ctx context.Context, c client.Client, key types.NamespacedName) error {
	exp := &v1alpha1.Experiment{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	return c.Patch(ctx, exp, client.RawPatch(types.MergePatchType, v1alpha1.AbortPatch()))
}

func printVerdict(w io.Writer, exp *v1alpha1.Experiment) {
	fmt.Fprintf(w, "\nverdict: %s (%s)\n%s\n", exp.Status.Verdict, exp.Status.Phase, exp.Status.Message)
	if len(exp.Status.Objectives) > 0 {
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nOBJECTIVE\tVERDICT\tDETAIL")
		for _, o := range exp.Status.Objectives {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", o.Name, o.Verdict, o.Message)
		}
		tw.Flush()
	}
}

func newGetCommand() *cobra.Command {
	var cf clusterFlags
	var all bool
	cmd := &cobra.Command{
		Use:   "get",
		Short: "List Experiments with their phase and verdict",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ns, err := cf.client()
			if err != nil {
				return err
			}
			var list v1alpha1.ExperimentList
			opts := []client.ListOption{}
			if !all {
				opts = append(opts, client.InNamespace(ns))
			}
			if err := c.List(cmd.Context(), &list, opts...); err != nil {
				return err
			}
			sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].CreationTimestamp.Before(&list.Items[j].CreationTimestamp) })
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAMESPACE\tNAME\tPHASE\tVERDICT\tAGE")
			for _, e := range list.Items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Namespace, e.Name, e.Status.Phase, e.Status.Verdict, time.Since(e.CreationTimestamp.Time).Round(time.Second))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list in every namespace")
	cf.add(cmd)
	return cmd
}

func newDescribeCommand() *cobra.Command {
	var cf clusterFlags
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show an Experiment's timeline, records, measurements and verdict",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := cf.client()
			if err != nil {
				return err
			}
			var exp v1alpha1.Experiment
			if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: args[0]}, &exp); err != nil {
				return err
			}
			// Events say what the status may not: a write the API server
			// refused, a step the controller retries.
			var events corev1.EventList
			if err := c.List(cmd.Context(), &events, client.InNamespace(exp.Namespace), client.MatchingFields{"involvedObject.uid": string(exp.UID)}); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: events not listed: %v\n", err)
			}
			describe(cmd.OutOrStdout(), &exp, events.Items...)
			return nil
		},
	}
	cf.add(cmd)
	return cmd
}

func describe(w io.Writer, exp *v1alpha1.Experiment, events ...corev1.Event) {
	st := exp.Status
	phase := string(st.Phase)
	if phase == "" {
		phase = "(none yet: the controller has not taken it up; see Conditions and Events)"
	}
	fmt.Fprintf(w, "Name:      %s/%s\nPhase:     %s\nVerdict:   %s\nMessage:   %s\n", exp.Namespace, exp.Name, phase, st.Verdict, st.Message)
	if st.StartTime != nil {
		fmt.Fprintf(w, "Started:   %s\n", st.StartTime.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "Targets:   %s\n", strings.Join(st.Targets, ", "))
	if len(st.Workloads) > 0 {
		fmt.Fprintf(w, "Workloads: %s\n", strings.Join(st.Workloads, ", "))
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	if len(st.Conditions) > 0 {
		fmt.Fprintln(tw, "\nConditions:\n  TYPE\tSTATUS\tREASON\tSINCE\tMESSAGE")
		for _, c := range st.Conditions {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, c.LastTransitionTime.Format("15:04:05"), c.Message)
		}
	}
	fmt.Fprintln(tw, "\nTimeline:")
	for _, e := range st.Timeline {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", e.Time.Format("15:04:05"), e.Reason, e.Message)
	}
	fmt.Fprintln(tw, "\nRecords:\n  FAULT\tTARGET\tNODE\tINJECTED\tRECOVERED\tACTION\tERROR")
	ts := func(t *metav1.Time) string {
		if t == nil {
			return "-"
		}
		return t.Format("15:04:05")
	}
	for _, r := range st.Records {
		fault := r.Fault
		if r.Round > 0 {
			fault += fmt.Sprintf(" #%d", r.Round)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", fault, r.Target, r.Node, ts(r.InjectedAt), ts(r.RecoveredAt), r.Action, r.Error)
	}
	for _, ro := range st.Rollouts {
		fmt.Fprintf(tw, "\nRollout of %s (fault %s):\n  triggered\t%s\n  started\t%s (new %s, old %s)\n  point\t%s\n  stalled\t%s\n  completed\t%s\n  progress\t%s\n",
			ro.Deployment, ro.Fault, ts(ro.TriggeredAt), ts(ro.StartedAt), ro.NewReplicaSet, strings.Join(ro.OldReplicaSets, ","), ts(ro.PointAt), ts(ro.StalledAt), ts(ro.CompletedAt), ro.Progress)
	}
	// Traffic: the periods where something failed, so a clean run is one
	// line and a bad one shows when and how.
	if len(st.Traffic) > 0 {
		var sent, failed int64
		for _, b := range st.Traffic {
			sent += b.Sent
			for _, n := range b.Errors {
				failed += n
			}
		}
		fmt.Fprintf(tw, "\nTraffic to %s: %d sent, %d failed, over %d period(s)\n", st.TrafficURL, sent, failed, len(st.Traffic))
		if failed > 0 {
			fmt.Fprintln(tw, "  FROM\tSECONDS\tSENT\tFAILED BY CLASS\tP99")
		}
		for _, b := range st.Traffic {
			if len(b.Errors) == 0 {
				continue
			}
			classes := make([]string, 0, len(b.Errors))
			for c, n := range b.Errors {
				classes = append(classes, fmt.Sprintf("%s=%d", c, n))
			}
			sort.Strings(classes)
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\n", b.Start.Format("15:04:05"), b.Seconds, b.Sent, strings.Join(classes, " "), b.LatencyP99)
		}
	}
	if len(st.NodeSpans) > 0 {
		fmt.Fprintln(tw, "\nNotReady spans:\n  NODE\tFROM\tTO")
		for _, s := range st.NodeSpans {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Node, s.From.Format("15:04:05"), ts(s.To))
		}
	}
	if len(st.Taints) > 0 {
		fmt.Fprintln(tw, "\nTaints:\n  NODE\tTAINT\tCHANGE\tTIME")
		for _, c := range st.Taints {
			change := "removed"
			if c.Added {
				change = "added"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.Node, c.Taint, change, c.Time.Format("15:04:05"))
		}
	}
	if len(st.Evictions) > 0 {
		fmt.Fprintln(tw, "\nEvictions:\n  POD\tNODE\tREASON\tTIME\tVIOLATED PDB")
		for _, e := range st.Evictions {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", e.Pod, e.Node, e.Reason, e.Time.Format("15:04:05"), e.ViolatedPDB)
		}
	}
	keys := make([]string, 0, len(st.Measurements))
	for k := range st.Measurements {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(tw, "\nMeasurements:")
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s\t%s\n", k, st.Measurements[k])
	}
	if len(events) > 0 {
		sort.SliceStable(events, func(i, j int) bool { return eventTime(&events[i]).Before(eventTime(&events[j])) })
		fmt.Fprintln(tw, "\nEvents:\n  LAST SEEN\tTYPE\tREASON\tCOUNT\tMESSAGE")
		for i := range events {
			e := &events[i]
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\n", eventTime(e).Format("15:04:05"), e.Type, e.Reason, max(e.Count, 1), e.Message)
		}
	}
	tw.Flush()
	printVerdict(w, exp)
}

// eventTime is when an event was last seen, whichever API wrote it.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

func newAbortCommand() *cobra.Command {
	var cf clusterFlags
	cmd := &cobra.Command{
		Use:   "abort NAME",
		Short: "Abort a running Experiment: every fault is recovered at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := cf.client()
			if err != nil {
				return err
			}
			if err := abort(cmd.Context(), c, types.NamespacedName{Namespace: ns, Name: args[0]}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "experiment %s/%s: abort requested\n", ns, args[0])
			return nil
		},
	}
	cf.add(cmd)
	return cmd
}

// listMeasurements prints every declared measurement: its path as an
// objective writes it, its type, and what it means.
func listMeasurements(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEASUREMENT\tTYPE\tMEANING")
	for _, m := range measures.All.Sorted() {
		doc := m.Doc
		if m.Sometimes {
			doc += "; only once there is something to measure (until then an objective on it is Inconclusive)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", strings.ReplaceAll(m.Path, ".*", "[KEY]"), m.Kind, doc)
	}
	return tw.Flush()
}
