package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// envCLI makes the test binary the faultline CLI, for tests that need a
// process of its own: signals, exit codes, memory.
const envCLI = "FAULTLINE_TEST_AS_CLI"

// runTests runs the package's tests; with the sandbox tag, through the
// shared sandbox's Main.
var runTests = func(m *testing.M) { os.Exit(m.Run()) }

func TestMain(m *testing.M) {
	if os.Getenv(envCLI) != "" {
		main()
	}
	runTests(m)
}

// cli starts the CLI in a process of its own with args; its stdin is the
// returned pipe's reader, held open by the writer.
func cli(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envCLI+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, &out, stdin
}

// waitExit waits for the CLI to end, failing the test if it does not
// within limit, and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd, limit time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("faultline %v: %v", cmd.Args[1:], err)
		}
		return cmd.ProcessState.ExitCode()
	case <-time.After(limit):
		t.Fatalf("faultline %v still runs after %s", cmd.Args[1:], limit)
		return -1
	}
}

func runRoot(args ...string) (string, error) {
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// Every example, workloads included: a bundle's other documents are left
// to the API server, and its faultline ones are checked.
func TestEveryShippedExampleIsValid(t *testing.T) {
	files, err := filepath.Glob("../../deploy/examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	faultline := 0
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, err := runRoot("validate", "-f", f)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			faultline += strings.Count(out, ": valid")
		})
	}
	if faultline < 4 {
		t.Fatalf("found %d example experiments and schedules, want at least 4", faultline)
	}
}

func TestValidate(t *testing.T) {
	valid, err := os.ReadFile("../../deploy/examples/node-partition.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		from, to string
		want     []string // empty: valid
	}{
		"the shipped example is valid":                  {},
		"a loss share above 100 names the field":        {from: "lossPercent: 100", to: "lossPercent: 101", want: []string{"spec.faults[0].networkLoss.lossPercent", "less than or equal to 100"}},
		"a missing duration names the field":            {from: "    duration: 90s\n", to: "", want: []string{"spec.faults[0].duration", "Required"}},
		"an unknown fault type lists the known ones":    {from: "type: NetworkLoss", to: "type: Meteor", want: []string{"spec.faults[0].type", `"NetworkLoss"`}},
		"a duration over the maximum is refused":        {from: "duration: 90s", to: "duration: 48h", want: []string{"spec.faults[0].duration", "at most 24h"}},
		"an objective that does not compile":            {from: "expr: recovery.seconds < 120", to: "expr: recovery.seconds <", want: []string{"objectives[1]", "the cluster recovers within two minutes"}},
		"an unknown field is refused":                   {from: "lossPercent: 100", to: "lossPercent: 100\n      lossPercentage: 5", want: []string{`unknown field "spec.faults[0].networkLoss.lossPercentage"`}},
		"a duration in an unknown unit names its field": {from: "duration: 90s", to: "duration: 90x", want: []string{`spec.faults[0].duration: time: unknown unit "x"`}},
		"a string where a number goes names its field":  {from: "lossPercent: 100", to: "lossPercent: all", want: []string{"spec.faults[0].networkLoss.lossPercent: a string cannot be a whole number"}},
		"an objective name the API server refuses":      {from: "name: the outage is bounded", to: "name: the outage's bounded", want: []string{"spec.objectives[0].name", "should match"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			doc := string(valid)
			if tc.from != "" {
				if !strings.Contains(doc, tc.from) {
					t.Fatalf("test bug: %q not in the example", tc.from)
				}
				doc = strings.Replace(doc, tc.from, tc.to, 1)
			}
			path := filepath.Join(t.TempDir(), "exp.yaml")
			if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := runRoot("validate", "-f", path)
			if len(tc.want) == 0 {
				if err != nil || !strings.Contains(out, "valid") {
					t.Fatalf("err %v, output %q; want valid", err, out)
				}
				return
			}
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != exitInvalid {
				t.Fatalf("err %v, want exit code %d", err, exitInvalid)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

const (
	validExperiment = `apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: cut, namespace: default}
spec:
  targets: {nodes: {names: [isolated-0]}}
  faults:
  - name: cut
    type: NetworkLoss
    duration: 90s
    networkLoss: {lossPercent: LOSS, towardAPIServer: true}
  objectives:
  - name: the outage is bounded
    expr: MEASURE <= 120
`
	deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {}
`
)

func experiment(loss int, measure string) string {
	return strings.NewReplacer("LOSS", fmt.Sprint(loss), "MEASURE", measure).Replace(validExperiment)
}

// scheduleOf is a Schedule whose template is exp's spec.
func scheduleOf(exp string) string {
	spec := exp[strings.Index(exp, "spec:\n")+len("spec:\n"):]
	var b strings.Builder
	b.WriteString("apiVersion: faultline.dev/v1alpha1\nkind: Schedule\nmetadata: {name: nightly, namespace: default}\nspec:\n  schedule: \"0 3 * * *\"\n  template:\n    experiment:\n")
	for _, l := range strings.SplitAfter(spec, "\n") {
		if l != "" {
			b.WriteString("    " + l)
		}
	}
	return b.String()
}

func seventeenFaults(doc string) string {
	fault := doc[strings.Index(doc, "  - name: cut\n"):strings.Index(doc, "  objectives:")]
	var faults strings.Builder
	for i := range 17 {
		faults.WriteString(strings.Replace(fault, "name: cut", fmt.Sprintf("name: cut-%d", i), 1))
	}
	return strings.Replace(doc, fault, faults.String(), 1)
}

func TestValidateReadsEveryDocumentOfEveryFile(t *testing.T) {
	schedule, err := os.ReadFile("../../deploy/examples/weekly-gameday.yaml")
	if err != nil {
		t.Fatal(err)
	}
	good := experiment(100, "recovery.seconds")
	tests := map[string]struct {
		files  []string // the content of each -f
		want   []string // in the output (valid) or the error
		refuse bool
	}{
		"two documents, the second bad, name the second and its field": {
			files:  []string{good + "---\n" + experiment(101, "recovery.seconds")},
			want:   []string{"document 1 (Experiment cut): valid", "document 2 (Experiment cut) is invalid", "spec.faults[0].networkLoss.lossPercent"},
			refuse: true,
		},
		"a Schedule followed by a broken Experiment": {
			files:  []string{string(schedule) + "---\n" + experiment(101, "recovery.seconds")},
			want:   []string{"document 1 (Schedule weekly-gameday): valid schedule", "document 2 (Experiment cut) is invalid"},
			refuse: true,
		},
		"a bundle's workload is left to the API server and its experiment checked": {
			files: []string{deployment + "---\n" + good},
			want:  []string{"document 1 (Deployment web): not faultline's (apps/v1 Deployment)", "document 2 (Experiment cut): valid"},
		},
		"a misspelt measurement is named with the real one": {
			files:  []string{experiment(100, "traffic.errorRatoi")},
			want:   []string{"spec.objectives[0]", "traffic.errorRatio"},
			refuse: true,
		},
		"a kind in the wrong case is named with the right one": {
			files:  []string{strings.Replace(string(schedule), "kind: Schedule", "kind: schedule", 1)},
			want:   []string{`kind: "schedule" is not a kind; did you mean "Schedule"?`},
			refuse: true,
		},
		"a kind faultline does not have lists the ones it has": {
			files:  []string{strings.Replace(good, "kind: Experiment", "kind: Chaos", 1)},
			want:   []string{`kind: "Chaos" is not one of faultline's (Experiment, Schedule)`},
			refuse: true,
		},
		"a document with no apiVersion or kind is refused": {
			files:  []string{good + "---\nmetadata: {name: orphan}\n"},
			want:   []string{"document 2 (no kind orphan) is invalid", "apiVersion and kind: required"},
			refuse: true,
		},
		"another version of faultline's API is refused": {
			files:  []string{strings.Replace(good, "v1alpha1", "v1", 1)},
			want:   []string{`apiVersion: "faultline.dev/v1" is not served`},
			refuse: true,
		},
		"-f given twice checks both files": {
			files:  []string{good, experiment(101, "recovery.seconds")},
			want:   []string{"f0.yaml: document 1 (Experiment cut): valid", "f1.yaml: document 1 (Experiment cut) is invalid"},
			refuse: true,
		},
		"an upper-case name is refused as the API server refuses it": {
			files:  []string{strings.Replace(good, "name: cut,", "name: Cut,", 1)},
			want:   []string{"metadata.name", "lowercase RFC 1123 subdomain"},
			refuse: true,
		},
		"no name at all is refused": {
			files:  []string{strings.Replace(good, "name: cut, ", "", 1)},
			want:   []string{"metadata.name", "name or generateName is required"},
			refuse: true,
		},
		"two objectives with one name are refused by the schema's list map": {
			files:  []string{good + "  - name: the outage is bounded\n    expr: recovery.seconds < 60\n"},
			want:   []string{"spec.objectives[1]", "Duplicate value"},
			refuse: true,
		},
		"a port given twice is refused by the schema's set": {
			files:  []string{strings.Replace(good, "towardAPIServer: true", "ports: [8080, 8080]", 1)},
			want:   []string{"spec.faults[0].networkLoss.ports[1]", "Duplicate value: 8080"},
			refuse: true,
		},
		"17 faults where 16 is the most": {
			files:  []string{seventeenFaults(good)},
			want:   []string{"spec.faults", "must have at most 16 items"},
			refuse: true,
		},
		"a Schedule in the Local zone is refused, as a CronJob is": {
			files:  []string{strings.Replace(string(schedule), "timeZone: Europe/Paris", "timeZone: Local", 1)},
			want:   []string{"spec.timeZone", "Local is the controller's own zone"},
			refuse: true,
		},
		"a Schedule whose template has a misspelt query condition names the template's field": {
			files:  []string{scheduleOf(strings.Replace(podExperiment, "successCondition: result[0] < 0.1", "successCondition: reslut[0] < 0.1", 1))},
			want:   []string{"spec.template.experiment.prometheus.queries[0].successCondition"},
			refuse: true,
		},
		"a file of nothing is refused": {
			files:  []string{"# only a comment\n"},
			want:   []string{"no document in it"},
			refuse: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			args := []string{"validate"}
			dir := t.TempDir()
			for i, content := range tc.files {
				f := filepath.Join(dir, fmt.Sprintf("f%d.yaml", i))
				if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "-f", f)
			}
			out, err := runRoot(args...)
			var ee *exitError
			switch {
			case tc.refuse && (!errors.As(err, &ee) || ee.code != exitInvalid):
				t.Fatalf("err %v, want exit code %d\n%s", err, exitInvalid, out)
			case !tc.refuse && err != nil:
				t.Fatalf("err %v, want valid\n%s", err, out)
			}
			all := out
			if err != nil {
				all += err.Error()
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("output and error lack %q:\n%s", w, all)
				}
			}
		})
	}
}

func TestRunRefusesAFileOfSeveralDocumentsBeforeItTouchesACluster(t *testing.T) {
	f := filepath.Join(t.TempDir(), "bundle.yaml")
	if err := os.WriteFile(f, []byte(deployment+"---\n"+experiment(100, "recovery.seconds")), 0o600); err != nil {
		t.Fatal(err)
	}
	// No cluster: the kubeconfig does not exist, so only a refusal
	// before any client is made can name the documents.
	_, err := runRoot("run", "-f", f, "--kubeconfig", filepath.Join(t.TempDir(), "none"))
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitInvalid || !strings.Contains(err.Error(), "holds 2 document(s) [document 1 (Deployment web), document 2 (Experiment cut)]") {
		t.Fatalf("err %v, want the two documents named", err)
	}
}

// The memory a read adds, over what the same binary takes to start: the
// test binary starts larger than faultline's own (make test builds both;
// /usr/bin/time -v bin/faultline validate -f /dev/zero measures the real one).
func TestValidateOfDevZeroEndsWithASizeErrorInLittleMemory(t *testing.T) {
	maxRSS := func(args ...string) (int64, string, int) {
		cmd, out, stdin := cli(t, args...)
		defer stdin.Close()
		code := waitExit(t, cmd, 30*time.Second)
		return cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss * 1024, out.String(), code
	}
	base, _, _ := maxRSS("validate", "--list-measurements")
	rss, out, code := maxRSS("validate", "-f", "/dev/zero")
	if code != exitInvalid {
		t.Fatalf("exit code %d, want %d\n%s", code, exitInvalid, out)
	}
	if !strings.Contains(out, "larger than 3 MiB") {
		t.Errorf("output lacks the size error:\n%s", out)
	}
	t.Logf("validate -f /dev/zero: max RSS %d MiB, %d MiB over the binary's start (%d MiB)", rss>>20, (rss-base)>>20, base>>20)
	if rss-base > 32<<20 {
		t.Errorf("reading /dev/zero took %d MiB over the binary's start, want under 32 MiB", (rss-base)>>20)
	}
}

func TestCtrlCStopsValidateWaitingOnStandardInput(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd, out, stdin := cli(t, "validate", "-f", "-")
			defer stdin.Close() // nothing is ever written
			// Signalled before main has its handler (a loaded machine starts
			// the binary slowly), it would die of the signal: wait until it
			// reads the pipe, which it does after.
			readingPipe(t, cmd.Process.Pid)
			sent := time.Now()
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := waitExit(t, cmd, 10*time.Second); code != exitInvalid {
				t.Errorf("exit code %d, want %d", code, exitInvalid)
			}
			t.Logf("%s: the CLI ended %s after the signal", sig, time.Since(sent).Round(time.Millisecond))
			if !strings.Contains(out.String(), "standard input: reading stopped") {
				t.Errorf("output lacks why it stopped:\n%s", out)
			}
		})
	}
}

func TestValidateStopsWhenItsContextEnds(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	root := newRootCommand()
	root.SetIn(r)
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	root.SetArgs([]string{"validate", "-f", "-"})
	if err := root.ExecuteContext(ctx); err == nil || !strings.Contains(err.Error(), "standard input: reading stopped: context deadline exceeded") {
		t.Fatalf("err %v, want the read stopped by the context", err)
	}
}

// podExperiment measures traffic and Prometheus queries: what the
// controller checks before it injects anything, beyond the schema.
const podExperiment = `apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: web, namespace: default}
spec:
  targets:
    pods:
      namespaces: [demo]
      labelSelectors: {app: web}
      expressionSelectors: [{key: tier, operator: In, values: [front]}]
  faults:
  - {name: lossy, type: NetworkLoss, duration: 60s, networkLoss: {lossPercent: 30}}
  traffic:
    url: http://web.demo.svc:80/
    rate: 20
    headers: {X-Gameday: tuesday}
  prometheus:
    address: http://prometheus.monitoring:9090
    queries:
    - name: errors
      query: sum(rate(http_requests_total{code=~"5.."}[1m]))
      successCondition: result[0] < 0.1
      failureLimit: 2
  objectives:
  - name: few errors
    expr: traffic.errorRatio < 0.05
`

// Finding 4: what the controller checked only at plan time, after it was
// given the experiment, validate checks offline with the same function.
func TestValidateRunsTheControllersChecksBeforeInjection(t *testing.T) {
	tests := map[string]struct {
		from, to string
		want     []string // empty: valid
	}{
		"the experiment as written is valid": {},
		"a selector operator Kubernetes does not have": {
			from: "operator: In", to: "operator: Contains",
			want: []string{"spec.targets.pods", `"Contains" is not a valid label selector operator`},
		},
		"a label value a selector cannot hold": {
			from: "{app: web}", to: "{app: 'web server'}",
			want: []string{"spec.targets.pods", "web server"},
		},
		"a header name with a space": {
			from: "X-Gameday: tuesday", to: "X Gameday: tuesday",
			want: []string{"spec.traffic.headers", "X Gameday"},
		},
		"a prober URL with no host": {
			from: "url: http://web.demo.svc:80/", to: "url: http:///healthz",
			want: []string{"spec.traffic.url", "http or https URL"},
		},
		"a success condition that does not compile": {
			from: "successCondition: result[0] < 0.1", to: "successCondition: result[0] <",
			want: []string{"spec.prometheus.queries[0].successCondition"},
		},
		"a failure limit below zero": {
			from: "failureLimit: 2", to: "failureLimit: -1",
			want: []string{"spec.prometheus.queries[0].failureLimit"},
		},
		"a query name objectives cannot read": {
			from: "- name: errors", to: "- name: 5xx-errors",
			want: []string{"spec.prometheus.queries[0].name"},
		},
		"a query without a Prometheus to ask": {
			from: "address: http://prometheus.monitoring:9090", to: "scrape: {etcd: [http://127.0.0.1:2381/metrics]}",
			want: []string{"spec.prometheus.queries", "need address"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(podExperiment, tc.from) {
				t.Fatalf("test bug: %q not in the experiment", tc.from)
			}
			f := filepath.Join(t.TempDir(), "exp.yaml")
			if err := os.WriteFile(f, []byte(strings.Replace(podExperiment, tc.from, tc.to, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := runRoot("validate", "-f", f)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("err %v, want valid\n%s", err, out)
				}
				return
			}
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != exitInvalid {
				t.Fatalf("err %v, want exit code %d\n%s", err, exitInvalid, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestValidateReadsADirectoryAndWithRItsSubdirectories(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("good.yaml", experiment(100, "recovery.seconds"))
	write("README.md", "not a manifest")
	write("broken/bad.yaml", experiment(101, "recovery.seconds"))

	out, err := runRoot("validate", "-f", dir)
	if err != nil || !strings.Contains(out, "good.yaml: document 1 (Experiment cut): valid") || strings.Contains(out, "README") {
		t.Fatalf("validate -f DIR: %v\n%s", err, out)
	}
	out, err = runRoot("validate", "-R", "-f", dir)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitInvalid || !strings.Contains(err.Error(), filepath.Join("broken", "bad.yaml")+": document 1 (Experiment cut) is invalid") {
		t.Fatalf("validate -R -f DIR: %v, want the subdirectory's bad file refused\n%s", err, out)
	}
	if _, err := runRoot("validate", "-f", filepath.Join(dir, "broken", "..", "broken")); err == nil {
		t.Fatal("a directory of one bad file is valid")
	}
}

// readingPipe waits until a thread of the process pid blocks reading a pipe
// (its wchan names the kernel's pipe read).
func readingPipe(t *testing.T, pid int) {
	t.Helper()
	for until := time.Now().Add(10 * time.Second); time.Now().Before(until); time.Sleep(10 * time.Millisecond) {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, task := range tasks {
			if w, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/wchan", pid, task.Name())); err == nil && strings.Contains(string(w), "pipe_read") {
				return
			}
		}
	}
	t.Fatalf("process %d never blocked reading its standard input", pid)
}
