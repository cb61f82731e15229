package controllertest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"faultline.dev/faultline/sandbox"
)

// kubeconfig is the API server's, for kubectl: the path users take.
var kubeconfig string

// kubectl runs the sandbox's kubectl against the API server with stdin.
func kubectl(stdin string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(sandbox.ToolsDir(), "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// installPolicy applies the chart's objectives policy as the chart does,
// and waits until the API server enforces it: a policy is active a moment
// after its creation.
func installPolicy(config []byte) error {
	f, err := os.CreateTemp("", "controllertest-kubeconfig-*")
	if err != nil {
		return err
	}
	kubeconfig = f.Name() // TestMain removes it
	if _, err := f.Write(config); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if out, err := kubectl("", "apply", "-f", filepath.Join("..", "..", "charts", "faultline", "files", "policy", "objectives.yaml")); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	probe := experimentYAML("probe", "traffic.errorRatoi <= 0.001")
	for range 60 {
		if out, err := kubectl(probe, "create", "--dry-run=server", "-f", "-"); err != nil && strings.Contains(out, "errorRatoi") {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return errors.New("the API server never enforced it")
}

func experimentYAML(name, expr string) string {
	return `apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata:
  name: ` + name + `
  namespace: default
spec:
  targets:
    nodes:
      names: [node-a]
  faults:
  - name: cut
    type: NetworkLoss
    duration: 30s
    networkLoss:
      lossPercent: 100
  objectives:
  - name: no 502s
    expr: traffic.status['502'] == 0 && evictions.order.all(e, e.qosClass != '')
  - name: the one under test
    expr: ` + fmt.Sprintf("%q", expr) + `
`
}

func TestTheAPIServerRefusesAnObjectiveThatNamesNoMeasurement(t *testing.T) {
	tests := map[string]struct {
		expr string
		// want are the words of the refusal; none: accepted.
		want []string
	}{
		"a declared measurement is accepted":                      {expr: "traffic.errorRatio <= 0.001"},
		"a map's key, a has() test and a macro are accepted":      {expr: `has(recovery.seconds) && traffic.status["503"] < 10 && nodes.memoryPressure.byNode.all(n, n != '')`},
		"a user's own PromQL query is accepted by its name":       {expr: "prometheus.queries.myQuery.phase == 'Successful'"},
		"a misspelt measurement is refused, with the nearest one": {expr: "traffic.errorRatoi <= 0.001", want: []string{`spec.objectives[the one under test].expr names no measurement: traffic.errorRatoi (did you mean traffic.errorRatio`}},
		"a number compared with a string is refused":              {expr: `traffic.errorRatio == "high"`, want: []string{`spec.objectives[the one under test].expr compares a number with a string: traffic.errorRatio == "high"`}},
	}
	ways := map[string][]string{
		"kubectl create":    {"create", "--dry-run=server", "-f", "-"},
		"kubectl apply":     {"apply", "--dry-run=server", "-f", "-"},
		"server-side apply": {"apply", "--server-side", "--dry-run=server", "-f", "-"},
	}
	for name, tc := range tests {
		for way, args := range ways {
			t.Run(name+", by "+way, func(t *testing.T) {
				out, err := kubectl(experimentYAML("policy-test", tc.expr), args...)
				if len(tc.want) == 0 {
					if err != nil {
						t.Fatalf("refused: %v\n%s", err, out)
					}
					return
				}
				if err == nil {
					t.Fatalf("accepted, want a refusal: %s", out)
				}
				for _, w := range tc.want {
					if !strings.Contains(out, w) {
						t.Errorf("the refusal does not say %q:\n%s", w, out)
					}
				}
			})
		}
	}
}
