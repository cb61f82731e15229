package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/controller"
	"faultline.dev/faultline/experiments/manifest"
	"faultline.dev/faultline/experiments/schema"
)

// checked is a faultline document that passed the offline checks: the
// object for a server-side dry run, and a line saying what it holds.
type checked struct {
	obj     client.Object
	summary string
}

// kinds are the faultline kinds validate checks, each decoded strictly
// (unknown fields are errors) and checked as the API server and the
// controller would.
var kinds = map[string]func(raw []byte) (checked, []string){
	"Experiment": func(raw []byte) (checked, []string) {
		exp, _, problems := checkExperiment(raw)
		if exp == nil {
			return checked{}, problems
		}
		return checked{exp, fmt.Sprintf("valid (%d fault(s), %d objective(s))", len(exp.Spec.Faults), len(exp.Spec.Objectives))}, problems
	},
	"Schedule": func(raw []byte) (checked, []string) {
		s, problems := checkSchedule(raw)
		if s == nil {
			return checked{}, problems
		}
		what := "1 experiment"
		if g := s.Spec.Template.Gameday; g != nil {
			what = fmt.Sprintf("a gameday of %d step(s)", len(g.Steps))
		}
		return checked{s, fmt.Sprintf("valid schedule (%q in %s, %s)", s.Spec.Schedule, zoneOrUTC(s.Spec.TimeZone), what)}, problems
	},
}

func kindNames() []string {
	var out []string
	for k := range kinds {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func newValidateCommand() *cobra.Command {
	var (
		files     []string
		recursive bool
		server    bool
		list      bool
		cf        clusterFlags
	)
	cmd := &cobra.Command{
		Use:   "validate -f FILE...",
		Short: "Check Experiments and Schedules without running them",
		Long: `validate checks every document of every file as the API server would,
with the CRD's own schema and rules run by the API server's code: every
field's bounds, patterns and rules, and the name's. Then it runs the checks
the controller makes before it injects anything: each objective is a CEL
expression over measurements that compiles and reads only measurements that
exist, each as what it is (a misspelt one is named with the nearest real
one); label selectors are valid; the traffic's URL and headers, and
Prometheus' query names, conditions and failure limits, are usable. A
Schedule is checked too: its cron expression parses, its time zone exists
(and is not Local), and each experiment of its template is valid.

A file may hold several documents, separated by lines of ---, as for
kubectl apply. A directory stands for its .json, .yaml and .yml files,
and with -R for those of its subdirectories too. Documents of other APIs
(a Deployment, a Service) are listed and left to the API server. Each
problem names the file, the document (its place in the file, kind and
name) and the field.

A file is at most 3 MiB, the most the API server takes in one request.
Ctrl-C or SIGTERM stops a read that waits (standard input, a FIFO).

With --server it also asks the cluster (a server-side dry run of each
faultline document), which checks against the CRDs actually installed and
runs the admission policies as for a real create: the chart's tenancy
policy refuses a node target, or pods of another namespace, to an author
without faultline's inject permission there, naming the command that
grants it. --as USER asks as USER would be answered.

Exit codes: 0 every document is valid; 2 any is not, or a file cannot be read.`,
		Example: `  faultline validate -f deploy/examples/node-partition.yaml
  faultline validate -f deploy/examples/weekly-gameday.yaml -f deploy/examples/memory-oom.yaml
  cat bundle.yaml | faultline validate -f -
  faultline validate -R -f deploy/examples/
  faultline validate --server --as jane -n team-a -f deploy/examples/node-partition.yaml
  faultline validate --list-measurements | grep traffic.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if list {
				return listMeasurements(cmd.OutOrStdout())
			}
			if len(files) == 0 {
				return &exitError{exitInvalid, errors.New("-f FILE: required (- for standard input), unless --list-measurements")}
			}
			var c client.Client
			var ns string
			if server {
				var err error
				if c, ns, err = cf.client(); err != nil {
					return &exitError{exitInvalid, err}
				}
			}
			expanded, err := manifest.Files(files, recursive)
			if err != nil {
				return &exitError{exitInvalid, err}
			}
			var failures []string
			for _, file := range expanded {
				failures = append(failures, validateFile(cmd.Context(), cmd.OutOrStdout(), cmd.InOrStdin(), file, c, ns)...)
			}
			if len(failures) > 0 {
				return &exitError{exitInvalid, errors.New(strings.Join(failures, "\n"))}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "a file of Experiments and Schedules, YAML or JSON, or a directory of them (- for standard input); repeat it for several")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "read the subdirectories of a -f directory too, as kubectl -R does")
	cmd.Flags().BoolVar(&server, "server", false, "also validate each faultline document with a server-side dry run")
	cmd.Flags().BoolVar(&list, "list-measurements", false, "print every measurement objectives may read, with its type and meaning, and exit")
	cf.add(cmd)
	return cmd
}

// validateFile checks every document of file, prints a line for each one
// that passes, and returns a message for each that does not (or for the
// file, when it cannot be read). c, when set, dry-runs each faultline
// document on the server; ns is the namespace of those that name none.
func validateFile(ctx context.Context, out io.Writer, stdin io.Reader, file string, c client.Client, ns string) []string {
	b, err := manifest.Read(ctx, file, stdin)
	if err != nil {
		return []string{err.Error()}
	}
	docs, err := manifest.Split(b)
	var failures []string
	if err != nil {
		failures = append(failures, fmt.Sprintf("%s: %v", file, err))
	}
	if len(docs) == 0 && err == nil {
		return []string{file + ": no document in it"}
	}
	for _, d := range docs {
		where := fmt.Sprintf("%s: %s", file, d)
		ok, problems := checkDocument(d)
		if len(problems) == 0 && c != nil && ok.obj != nil {
			if ok.obj.GetNamespace() == "" {
				ok.obj.SetNamespace(ns)
			}
			if err := c.Create(ctx, ok.obj, client.DryRunAll); err != nil {
				problems = append(problems, "the API server refused it: "+manifest.Clip(err.Error()))
			}
		}
		if len(problems) > 0 {
			failures = append(failures, fmt.Sprintf("%s is invalid:\n  %s", where, strings.Join(problems, "\n  ")))
			continue
		}
		fmt.Fprintf(out, "%s: %s\n", where, ok.summary)
	}
	return failures
}

// checkDocument routes a document by its apiVersion and kind: faultline's
// are checked; another API's are noted, for the API server to check.
func checkDocument(d manifest.Document) (checked, []string) {
	switch {
	case d.APIVersion == "" || d.Kind == "":
		return checked{}, []string{"apiVersion and kind: required; faultline's are " + v1alpha1.GroupVersion.String() + " " + strings.Join(kindNames(), " and ")}
	case d.Group() != v1alpha1.GroupVersion.Group:
		return checked{summary: fmt.Sprintf("not faultline's (%s %s): left to the API server", d.APIVersion, d.Kind)}, nil
	case d.APIVersion != v1alpha1.GroupVersion.String():
		return checked{}, []string{fmt.Sprintf("apiVersion: %q is not served; faultline's is %s", d.APIVersion, v1alpha1.GroupVersion)}
	}
	check, ok := kinds[d.Kind]
	if !ok {
		for _, k := range kindNames() {
			if strings.EqualFold(k, d.Kind) {
				return checked{}, []string{fmt.Sprintf("kind: %q is not a kind; did you mean %q? (kinds are case-sensitive)", d.Kind, k)}
			}
		}
		return checked{}, []string{fmt.Sprintf("kind: %q is not one of faultline's (%s)", manifest.Clip(d.Kind), strings.Join(kindNames(), ", "))}
	}
	return check(d.Raw)
}

// readOneExperiment reads the file run creates: one Experiment, checked,
// and the document as written, which is what run sends (the Go type would
// write fields back in its own form; the user's manifest is what kubectl
// would have sent).
func readOneExperiment(ctx context.Context, file string, stdin io.Reader) (*v1alpha1.Experiment, *unstructured.Unstructured, error) {
	b, err := manifest.Read(ctx, file, stdin)
	if err != nil {
		return nil, nil, err
	}
	docs, err := manifest.Split(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(docs) != 1 || docs[0].Kind != "Experiment" {
		var what []string
		for _, d := range docs {
			what = append(what, d.String())
		}
		return nil, nil, fmt.Errorf("%s: run takes a file of one Experiment, and this one holds %d document(s) [%s]; check them with faultline validate -f, create them with kubectl apply -f, and gate on each with faultline wait",
			file, len(docs), strings.Join(what, ", "))
	}
	exp, raw, problems := checkExperiment(docs[0].Raw)
	if len(problems) > 0 {
		return nil, nil, fmt.Errorf("%s: %s is invalid:\n  %s", file, docs[0], strings.Join(problems, "\n  "))
	}
	return exp, raw, nil
}

// serverChecks returns what the API server would refuse in doc, by the
// CRD's schema and rules, after what faultline checks that the schema
// cannot say (own: a cron that parses, a zone that exists, which fault a
// rule over the engine refuses); where both refuse the same, faultline's
// words, which name the field, are kept.
func serverChecks(doc map[string]any, own field.ErrorList) []string {
	var problems []string
	for _, e := range own {
		problems = append(problems, manifest.Clip(e.Error()))
	}
	v, err := schema.Faultline()
	if err != nil {
		return append(problems, "the embedded CRDs: "+err.Error())
	}
	server, err := v.Validate(doc)
	if err != nil {
		return append(problems, err.Error())
	}
	for _, e := range server {
		// The same refusal: on the same field, or a CEL rule of a parent
		// (which can only name the parent) with the same message.
		covered := slices.ContainsFunc(own, func(o *field.Error) bool {
			return e.Field == o.Field || (strings.HasPrefix(o.Field, e.Field) && e.Detail == o.Detail)
		})
		if !covered {
			problems = append(problems, manifest.Clip(e.Error()))
		}
	}
	return problems
}

// checkExperiment decodes an Experiment strictly and checks it as the API
// server and the controller would; with problems, the Experiment is nil.
func checkExperiment(raw []byte) (*v1alpha1.Experiment, *unstructured.Unstructured, []string) {
	var exp v1alpha1.Experiment
	if err := manifest.DecodeStrict(raw, &exp); err != nil {
		return nil, nil, []string{manifest.Clip(err.Error())}
	}
	doc := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(raw, &doc.Object); err != nil {
		return nil, nil, []string{manifest.Clip(err.Error())}
	}
	problems := serverChecks(doc.Object, exp.Spec.ValidateEngine())
	problems = append(problems, precheck("spec", &exp.Spec)...)
	if len(problems) > 0 {
		return nil, nil, problems
	}
	return &exp, doc, nil
}

// checkSchedule decodes a Schedule strictly and checks it as the API
// server and the controller would, the objectives of each experiment of
// its template included; with problems, the Schedule is nil.
func checkSchedule(raw []byte) (*v1alpha1.Schedule, []string) {
	var s v1alpha1.Schedule
	if err := manifest.DecodeStrict(raw, &s); err != nil {
		return nil, []string{manifest.Clip(err.Error())}
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, []string{manifest.Clip(err.Error())}
	}
	problems := serverChecks(doc, s.Validate())
	if e := s.Spec.Template.Experiment; e != nil {
		problems = append(problems, precheck("spec.template.experiment", e)...)
	}
	if g := s.Spec.Template.Gameday; g != nil {
		for i := range g.Steps {
			problems = append(problems, precheck(fmt.Sprintf("spec.template.gameday.steps[%d].experiment", i), &g.Steps[i].Experiment)...)
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return &s, nil
}

// precheck runs the controller's own checks before injection (Precheck)
// on spec, found at path: the objectives against the declared
// measurements, the selectors, the prober's and Prometheus' settings. A
// misspelt measurement or a bad PromQL query name fails here, not after
// the faults ran.
func precheck(path string, spec *v1alpha1.ExperimentSpec) []string {
	err := controller.Precheck(&v1alpha1.Experiment{Spec: *spec})
	if err == nil {
		return nil
	}
	var problems []string
	for _, e := range strings.Split(err.Error(), "\n") {
		problems = append(problems, manifest.Clip(path+strings.TrimPrefix(e, "spec")))
	}
	return problems
}
