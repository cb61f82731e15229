package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"faultline.dev/faultline/deploy"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/catalog"
	"faultline.dev/faultline/experiments/report"
	"faultline.dev/faultline/sandbox"
)

func newCatalogCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "Ready scenarios: failure stories with a fragile and a hardened workload",
		Long: `catalog holds faultline's ready scenarios, embedded in this binary. Each
is a failure story platform engineers tell each other, with its expected
outcome written down, a fragile and a hardened variant of the workload, and
an experiment whose objectives the hardened variant passes and the fragile
one fails.

  faultline catalog list
  faultline catalog show memory-overcommit
  faultline catalog run memory-overcommit --sandbox default`,
	}
	cmd.AddCommand(newCatalogListCommand(), newCatalogShowCommand(), newCatalogRunCommand())
	return cmd
}

func newCatalogListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the scenarios, their variants and the verdict each must get",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := catalog.Load()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tTITLE\tVARIANTS (EXPECTED)\tNEEDS\tLANDED")
			for _, s := range c.Scenarios {
				var vs, needs []string
				for _, v := range s.Variants {
					vs = append(vs, fmt.Sprintf("%s (%s)", v.Name, v.Expect))
				}
				for _, n := range s.Needs {
					needs = append(needs, string(n))
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\n", s.Name, s.Title, strings.Join(vs, ", "), strings.Join(needs, ","), s.IsLanded())
			}
			return w.Flush()
		},
	}
}

func newCatalogShowCommand() *cobra.Command {
	var manifests bool
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Tell a scenario's story, its variants and their expected outcomes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := catalog.Load()
			if err != nil {
				return err
			}
			s, err := c.Get(args[0])
			if err != nil {
				return &exitError{exitInvalid, err}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: %s\n\n%s\n", s.Name, s.Title, s.Story)
			if !s.IsLanded() {
				fmt.Fprintln(out, "Not landed yet: written down, not runnable.")
			}
			fmt.Fprintf(out, "Experiment: deploy/examples/%s\n", s.Experiment)
			for _, v := range s.Variants {
				fmt.Fprintf(out, "\n  %s: expect %s\n    %s\n", v.Name, v.Expect, v.Outcome)
				if v.Workload != "" {
					fmt.Fprintf(out, "    workload: deploy/examples/%s\n", v.Workload)
				}
				if v.Experiment != "" {
					fmt.Fprintf(out, "    experiment: deploy/examples/%s\n", v.Experiment)
				}
			}
			if manifests {
				for _, f := range scenarioFiles(s) {
					b, err := catalog.File(f)
					if err != nil {
						return err
					}
					fmt.Fprintf(out, "\n--- # deploy/examples/%s\n%s", f, b)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&manifests, "manifests", false, "also print the workload and experiment manifests")
	return cmd
}

func scenarioFiles(s catalog.Scenario) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s.Variants {
		for _, f := range []string{v.Workload, s.ExperimentFile(v)} {
			if f != "" && !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	return out
}

// catalogFlags say where scenarios run.
type catalogFlags struct {
	cf         clusterFlags
	sandbox    string
	prometheus string
	variants   []string
	timeout    time.Duration
	report     string
	// notes hears the variants left out; nowhere when nil.
	notes io.Writer
}

func newCatalogRunCommand() *cobra.Command {
	f := &catalogFlags{}
	cmd := &cobra.Command{
		Use:   "run NAME...",
		Short: "Run scenarios' variants and check each gets the verdict written down",
		Long: `run applies each variant's workload into a namespace of its own, runs the
scenario's experiment against it, follows it live, deletes the namespace,
and prints a table: the verdict each variant got and the one it must get.

Exit codes: 0 when every variant got its expected verdict, 1 when one did
not, 2 on invalid input or an error before a verdict.

With --sandbox NAME the sandbox's kubeconfig, etcd data directory and
Prometheus are used; otherwise --kubeconfig, and --prometheus for scenarios
that query one.`,
		Example: `  faultline catalog run rolling-update --sandbox default
  faultline catalog run memory-overcommit --variant hardened --kubeconfig ~/.kube/staging`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f.notes = cmd.ErrOrStderr()
			runs, err := f.prepare(args)
			if err != nil {
				return &exitError{exitInvalid, err}
			}
			cfg, c, err := f.cluster()
			if err != nil {
				return &exitError{exitInvalid, err}
			}
			results := runScenarios(cmd.Context(), cfg, c, runs, f.timeout, cmd.ErrOrStderr())
			printResults(cmd.OutOrStdout(), results)
			if f.report != "" {
				if err := writeGamedayReport(f.report, "catalog "+strings.Join(args, ", "), results); err != nil {
					return &exitError{exitInvalid, err}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "report: %s\n", f.report)
			}
			return resultsExit(results)
		},
	}
	f.cf.add(cmd)
	cmd.Flags().StringVar(&f.sandbox, "sandbox", "", "run on this faultline sandbox (its kubeconfig, etcd and Prometheus)")
	cmd.Flags().StringVar(&f.prometheus, "prometheus", "", "Prometheus URL for scenarios that query one (default: the sandbox's)")
	cmd.Flags().StringSliceVar(&f.variants, "variant", nil, "run only these variants (default: all)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 10*time.Minute, "give up on one variant's verdict after this long")
	cmd.Flags().StringVar(&f.report, "report", "", "also write a gameday report of every variant (html, md, junit or json, by the file's extension)")
	return cmd
}

// writeGamedayReport writes the report of the runs that reached a verdict,
// each step named for its scenario, variant and expected verdict.
func writeGamedayReport(path, name string, results []result) error {
	format, err := report.FormatOf(path)
	if err != nil {
		return err
	}
	var steps []report.Step
	for _, r := range results {
		if r.final != nil {
			steps = append(steps, report.Step{Name: fmt.Sprintf("%s/%s (expect %s)", r.run.Scenario, r.run.Variant, r.run.Expect), Report: report.FromExperiment(r.final)})
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := report.WriteGameday(f, format, report.NewGameday(name, steps...)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// bindings are what the scenarios learn of the cluster.
func (f *catalogFlags) bindings() (catalog.Bindings, error) {
	b := catalog.Bindings{PrometheusURL: f.prometheus}
	if f.sandbox == "" {
		return b, nil
	}
	st, err := sandbox.Status(sandbox.Config{Name: f.sandbox})
	if err != nil {
		return b, err
	}
	b.SandboxDir = st.Config.Dir()
	b.Timings = string(st.Config.Timings)
	if b.PrometheusURL == "" {
		b.PrometheusURL = st.PrometheusURL
	}
	if f.cf.kubeconfig == "" {
		f.cf.kubeconfig = st.Kubeconfig
	}
	return b, nil
}

func (f *catalogFlags) prepare(names []string) ([]*catalog.Run, error) {
	c, err := catalog.Load()
	if err != nil {
		return nil, err
	}
	b, err := f.bindings()
	if err != nil {
		return nil, err
	}
	var runs []*catalog.Run
	for _, name := range names {
		s, err := c.Get(name)
		if err != nil {
			return nil, err
		}
		var vs []catalog.Variant
		if len(f.variants) == 0 {
			// All variants: those written for other timings than the
			// sandbox's are left out, and said so; one named is refused.
			for _, v := range s.Variants {
				if why := b.Fits(v); why != "" {
					if f.notes != nil {
						fmt.Fprintf(f.notes, "skipping %s/%s: %s\n", s.Name, v.Name, why)
					}
					continue
				}
				vs = append(vs, v)
			}
		} else {
			for _, n := range f.variants {
				v, err := s.Variant(n)
				if err != nil {
					return nil, err
				}
				vs = append(vs, v)
			}
		}
		for _, v := range vs {
			r, err := s.Prepare(v, fmt.Sprintf("%s-%s-%s", s.Namespace, v.Name, rand.String(4)), b)
			if err != nil {
				return nil, err
			}
			runs = append(runs, r)
		}
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("no variant of %s fits this cluster: see the variants skipped above", strings.Join(names, ", "))
	}
	return runs, nil
}

func (f *catalogFlags) cluster() (*rest.Config, client.Client, error) {
	cfg, _, err := f.cf.config()
	if err != nil {
		return nil, nil, err
	}
	c, _, err := f.cf.client()
	if err != nil {
		return nil, nil, err
	}
	return cfg, c, nil
}

// result is one variant's run.
type result struct {
	run   *catalog.Run
	final *v1alpha1.Experiment
	err   error
}

func (r result) verdict() v1alpha1.Verdict {
	if r.final == nil {
		return v1alpha1.VerdictError
	}
	return r.final.Status.Verdict
}

func (r result) ok() bool { return r.err == nil && r.verdict() == r.run.Expect }

// runScenarios runs each prepared variant in turn, saying what it does on
// out as it goes.
func runScenarios(ctx context.Context, cfg *rest.Config, c client.Client, runs []*catalog.Run, timeout time.Duration, out io.Writer) []result {
	var results []result
	for i, r := range runs {
		fmt.Fprintf(out, "\n=== [%d/%d] %s, %s variant (expect %s) in namespace %s\n", i+1, len(runs), r.Scenario, r.Variant, r.Expect, r.Namespace)
		final, err := runVariant(ctx, cfg, c, r, timeout, out)
		if err != nil {
			fmt.Fprintf(out, "error: %v\n", err)
		}
		results = append(results, result{run: r, final: final, err: err})
		if ctx.Err() != nil {
			break
		}
	}
	return results
}

func runVariant(ctx context.Context, cfg *rest.Config, c client.Client, r *catalog.Run, timeout time.Duration, out io.Writer) (*v1alpha1.Experiment, error) {
	if err := waitSettled(ctx, c, 3*time.Minute, out); err != nil {
		return nil, err
	}
	if len(r.Workload) > 0 {
		var docs []string
		for _, o := range r.Workload {
			b, err := json.Marshal(o.Object)
			if err != nil {
				return nil, err
			}
			docs = append(docs, string(b))
		}
		if err := deploy.Apply(ctx, cfg, []byte(strings.Join(docs, "\n"))); err != nil {
			return nil, fmt.Errorf("apply the workload: %w", err)
		}
		// The namespace goes with the run, before the next starts: its
		// workloads would otherwise be on the next run's targets too.
		defer deleteNamespace(context.WithoutCancel(ctx), c, r.Namespace, out)
		if err := waitAvailable(ctx, c, r.Namespace, 3*time.Minute, out); err != nil {
			return nil, err
		}
	}
	exp := r.Experiment.DeepCopy()
	if err := c.Create(ctx, exp); err != nil {
		return nil, fmt.Errorf("create the experiment: %w", err)
	}
	fmt.Fprintf(out, "experiment %s/%s created\n", exp.Namespace, exp.Name)
	return follow(ctx, c, client.ObjectKeyFromObject(exp), timeout, out)
}

// waitSettled waits until no node is under memory, disk or PID pressure:
// a run right after another would start inside the last one's pressure
// (the kubelet keeps its condition a while after the pressure ends), and
// be judged on what the other left.
func waitSettled(ctx context.Context, c client.Client, timeout time.Duration, out io.Writer) error {
	start, said := time.Now(), false
	for {
		var nodes corev1.NodeList
		if err := c.List(ctx, &nodes); err != nil {
			return err
		}
		var pressed []string
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				switch cond.Type {
				case corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure:
					if cond.Status == corev1.ConditionTrue {
						pressed = append(pressed, n.Name+" "+string(cond.Type))
					}
				}
			}
		}
		if len(pressed) == 0 {
			return nil
		}
		if !said {
			fmt.Fprintf(out, "waiting for the cluster to settle: %s\n", strings.Join(pressed, ", "))
			said = true
		}
		if time.Since(start) > timeout {
			return fmt.Errorf("the cluster has not settled after %s: %s", timeout, strings.Join(pressed, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// deleteNamespace deletes ns and waits (up to 2 minutes) until it is gone.
func deleteNamespace(ctx context.Context, c client.Client, ns string, out io.Writer) {
	obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
	if err := c.Delete(ctx, obj); err != nil {
		return
	}
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); apierrors.IsNotFound(err) {
			return
		}
	}
	fmt.Fprintf(out, "namespace %s is still going away after 2m; going on\n", ns)
}

// waitAvailable waits until every Deployment of ns has all its replicas
// available, saying so every 15 s.
func waitAvailable(ctx context.Context, c client.Client, ns string, timeout time.Duration, out io.Writer) error {
	start := time.Now()
	last := start
	for {
		var list appsv1.DeploymentList
		err := c.List(ctx, &list, client.InNamespace(ns))
		waiting := []string{}
		for _, d := range list.Items {
			want := int32(1)
			if d.Spec.Replicas != nil {
				want = *d.Spec.Replicas
			}
			if d.Status.AvailableReplicas < want || d.Status.UpdatedReplicas < want {
				waiting = append(waiting, fmt.Sprintf("%s %d/%d", d.Name, d.Status.AvailableReplicas, want))
			}
		}
		if err == nil && len(waiting) == 0 {
			fmt.Fprintf(out, "workload available in %.0fs (%d Deployment(s))\n", time.Since(start).Seconds(), len(list.Items))
			return nil
		}
		if err != nil {
			waiting = append(waiting, err.Error())
		}
		if time.Since(start) > timeout {
			return fmt.Errorf("the workload in %s is not available after %s: %s", ns, timeout, strings.Join(waiting, ", "))
		}
		if time.Since(last) > 15*time.Second {
			fmt.Fprintf(out, "[%5.0fs] waiting for the workload: %s\n", time.Since(start).Seconds(), strings.Join(waiting, ", "))
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func printResults(w io.Writer, results []result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSCENARIO\tVARIANT\tEXPECTED\tVERDICT\tAS WRITTEN\tKEY FIGURES")
	for _, r := range results {
		figures := ""
		if r.final != nil {
			figures = keyFigures(r.final)
		}
		if r.err != nil {
			figures = r.err.Error()
		}
		as := "yes"
		if !r.ok() {
			as = "NO"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.run.Scenario, r.run.Variant, r.run.Expect, r.verdict(), as, figures)
	}
	_ = tw.Flush()
}

func resultsExit(results []result) error {
	bad := 0
	for _, r := range results {
		if r.err != nil && r.final == nil {
			return &exitError{exitInvalid, fmt.Errorf("%s/%s: %w", r.run.Scenario, r.run.Variant, r.err)}
		}
		if !r.ok() {
			bad++
		}
	}
	if bad > 0 {
		return &exitError{exitFailed, fmt.Errorf("%d of %d variant(s) did not get the verdict written down", bad, len(results))}
	}
	return nil
}
