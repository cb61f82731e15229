package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"faultline.dev/faultline/experiments/catalog"
	"faultline.dev/faultline/sandbox"
)

func newDemoCommand() *cobra.Command {
	var (
		keep    bool
		report  string
		timeout time.Duration
	)
	f := &sandboxFlags{cfg: sandbox.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Bring up a sandbox and run a gameday of the catalog's scenarios on it",
		Long: `demo is faultline's main job on one machine. It brings a sandbox up (fast
node timings, Prometheus, the ingress and faultline's controller and
agents, and the nodes its scenarios need: one real node, and no simulated
node unless a scenario needs one; or reuses a running one) and runs a
gameday of the catalog's
scenarios that fit in about ten minutes: a rolling update under load and
memory overcommit, each with its fragile and its hardened workload, and
etcd on a slow disk. Each variant must get the verdict written down in the
catalog (faultline catalog list).

While it runs it prints each experiment's timeline live. At the end it
prints the verdict table (scenario, variant, expected and actual verdict,
key figures) and the path of the HTML report, and tears the sandbox down
unless --keep.

Exit codes: 0 when every variant got its expected verdict, 1 when one did
not, 2 when the sandbox or a run failed before a verdict.`,
		Example: `  sudo make demo
  sudo faultline demo --keep --report /tmp/gameday.html`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := catalog.Load()
			if err != nil {
				return &exitError{exitInvalid, err}
			}
			f.cfg = demoSandbox(f.cfg, c.Demo())
			start := time.Now()
			ctx := cmd.Context()
			out, logw := cmd.OutOrStdout(), cmd.ErrOrStderr()
			p := sandbox.NewProgress(logw)
			st, err := sandbox.Status(f.cfg)
			if err != nil || !st.Ready || st.PrometheusURL == "" || st.IngressURL == "" {
				if st, err = sandbox.Up(ctx, f.cfg, p, false); err != nil {
					return &exitError{exitInvalid, err}
				}
			} else {
				p.Printf("reusing sandbox %q", st.Name)
			}
			if !keep {
				defer func() {
					if err := sandbox.Down(f.cfg, p); err != nil {
						fmt.Fprintln(logw, "error: tearing the sandbox down:", err)
					}
				}()
			}
			results, err := runDemoGameday(ctx, c, st, timeout, logw)
			if err != nil {
				return &exitError{exitInvalid, err}
			}
			printResults(out, results)
			if report == "" {
				report = filepath.Join(".", "faultline-demo-report.html")
			}
			if abs, err := filepath.Abs(report); err == nil {
				report = abs
			}
			if err := writeGamedayReport(report, "faultline demo", results); err != nil {
				return &exitError{exitInvalid, err}
			}
			fmt.Fprintf(out, "\nreport: %s\ntotal: %s\n", report, time.Since(start).Round(time.Second))
			if keep {
				fmt.Fprintf(out, "The sandbox stays up: export KUBECONFIG=%s; remove it with: sudo faultline sandbox down --name %s\n", st.Kubeconfig, st.Name)
			}
			return resultsExit(results)
		},
	}
	f.addName(cmd)
	cmd.Flags().BoolVar(&keep, "keep", false, "leave the sandbox up when done")
	cmd.Flags().StringVar(&report, "report", "", "where to write the gameday report; html, md, junit or json by the extension (default ./faultline-demo-report.html)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up on one variant's verdict after this long")
	return cmd
}

// demoSandbox is the sandbox the demo's scenarios need (fast node timings,
// Prometheus, the ingress and faultline's controller and agents) and no
// more: kwok nodes only for a scenario that needs an isolated node, so that
// make demo builds no kwok when none does.
func demoSandbox(cfg sandbox.Config, scenarios []catalog.Scenario) sandbox.Config {
	cfg.Timings, cfg.Prometheus, cfg.Ingress, cfg.Faultline = sandbox.TimingsFast, true, true, true
	cfg.SharedKwokNodes, cfg.IsolatedKwokNodes = 0, 0
	if catalog.Needing(scenarios, catalog.NeedIsolatedNode) {
		cfg.IsolatedKwokNodes = sandbox.DefaultConfig().IsolatedKwokNodes
	}
	if catalog.Needing(scenarios, catalog.NeedRealNode) {
		cfg.RealNodes = max(cfg.RealNodes, 1)
	}
	return cfg
}

// runDemoGameday runs the catalog's demo variants on the sandbox, in order.
func runDemoGameday(ctx context.Context, c *catalog.Catalog, st *sandbox.State, timeout time.Duration, out io.Writer) ([]result, error) {
	f := &catalogFlags{cf: clusterFlags{kubeconfig: st.Kubeconfig}, sandbox: st.Name}
	var names []string
	for _, s := range c.Demo() {
		names = append(names, s.Name)
	}
	runs, err := f.prepareDemo(c, names)
	if err != nil {
		return nil, err
	}
	cfg, cl, err := f.cluster()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "\ngameday: %d run(s) of %s\n", len(runs), strings.Join(names, ", "))
	return runScenarios(ctx, cfg, cl, runs, timeout, out), nil
}

// prepareDemo prepares each scenario's demo variants.
func (f *catalogFlags) prepareDemo(c *catalog.Catalog, names []string) ([]*catalog.Run, error) {
	var runs []*catalog.Run
	for _, name := range names {
		s, err := c.Get(name)
		if err != nil {
			return nil, err
		}
		f.variants = s.Demo
		rs, err := f.prepare([]string{name})
		if err != nil {
			return nil, err
		}
		runs = append(runs, rs...)
	}
	return runs, nil
}
