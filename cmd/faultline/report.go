package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/report"
)

func newReportCommand() *cobra.Command {
	var (
		cf             clusterFlags
		format, output string
	)
	cmd := &cobra.Command{
		Use:   "report NAME -o FILE",
		Short: "Write an Experiment's report: HTML, Markdown, JUnit XML or JSON",
		Long: `report reads an Experiment from the cluster and writes its report, for
people and for CI:

  html   one self-contained page (no network needed): the verdict, the
         objectives, and charts of the fault windows, the traffic (rate,
         errors by class, p99 latency), nodes NotReady, evictions and etcd's
         fsync latency. Open it in a browser or keep it as a CI artifact.
  md     short Markdown for a pull request comment: the verdict, the
         objectives and the key figures.
  junit  JUnit XML, one testcase per objective (classname the experiment),
         so that CI shows each SLO as a test. A failed objective is a
         failure naming the measurement and its bound; one that could not
         be judged (Inconclusive, Error) is an error, never a skip.
  json   everything, in the versioned model ` + report.APIVersion + `.

The format comes from --format, else from the file's extension (.html,
.md, .xml, .json); standard output (-o -, the default) is Markdown unless
--format says otherwise.

The controller also keeps each finished experiment's JSON report in the
ConfigMap NAME-report (key ` + "report.json" + `), deleted with the experiment.`,
		Example: `  faultline report node-partition -n team-a -o report.html
  faultline report node-partition --format junit -o junit.xml
  faultline report node-partition                 # Markdown on stdout
  faultline report node-partition --format json -o - | jq .objectives

  # Run and report in one go:
  faultline run -f exp.yaml --report report.html`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := reportFormat(format, output)
			if err != nil {
				return &exitError{exitInvalid, err}
			}
			c, ns, err := cf.client()
			if err != nil {
				return &exitError{exitInvalid, err}
			}
			var exp v1alpha1.Experiment
			if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: args[0]}, &exp); err != nil {
				return &exitError{exitInvalid, err}
			}
			if !exp.Status.Phase.IsFinal() {
				fmt.Fprintf(cmd.ErrOrStderr(), "experiment %s/%s is %s, not finished: the report shows it so far\n", ns, exp.Name, exp.Status.Phase)
			}
			return writeReport(cmd.OutOrStdout(), cmd.ErrOrStderr(), output, f, &exp)
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "html, md, junit or json (default: from -o's extension; md on standard output)")
	cmd.Flags().StringVarP(&output, "output", "o", "-", "file to write, - for standard output")
	cf.add(cmd)
	return cmd
}

// reportFormat is the named format, else the file's extension's; standard
// output, where nothing tells, gets the Markdown a terminal reads best.
func reportFormat(name, path string) (report.Format, error) {
	switch {
	case name != "":
		return report.ParseFormat(name)
	case path == "-" || path == "":
		return report.Markdown, nil
	}
	return report.FormatOf(path)
}

// writeReport writes the experiment's report to path (- for stdout) and
// says where on log.
func writeReport(stdout, log io.Writer, path string, f report.Format, exp *v1alpha1.Experiment) error {
	rep := report.FromExperiment(exp)
	if path == "-" || path == "" {
		return report.Write(stdout, f, rep)
	}
	file, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := report.Write(file, f, rep); err != nil {
		file.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := file.Close(); err != nil {
		return err
	}
	fmt.Fprintf(log, "%s report written to %s\n", strings.ToUpper(string(f)), path)
	return nil
}
