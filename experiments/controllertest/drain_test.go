package controllertest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/controller"
)

// What the chart's pre-delete hook runs (faultline-controller --drain)
// before helm uninstall removes the agents: every running experiment is
// aborted, and it returns only once the agents report every fault
// recovered; or, at its timeout, it names what is left and how to clear it.
func TestDrainAbortsEveryExperimentAndWaitsForTheAgentsRecovery(t *testing.T) {
	ctx := context.Background()
	node(t, "node-a")
	node(t, "node-b")
	running := func(t *testing.T, node string) *v1alpha1.Experiment {
		t.Helper()
		e := experiment("default", onNodes(node), lasting(time.Hour))
		create(t, e)
		waitFor(t, e, 10*time.Second, "the experiment to run", func(e *v1alpha1.Experiment) bool { return e.Status.Phase == v1alpha1.PhaseRunning })
		return e
	}

	t.Run("drain aborts every running experiment and returns once no agent holds a fault", func(t *testing.T) {
		exps := []*v1alpha1.Experiment{running(t, "node-a"), running(t, "node-b")}
		var out bytes.Buffer
		if err := controller.Drain(ctx, k8s, controller.DrainOptions{Timeout: 30 * time.Second, Interval: 100 * time.Millisecond, Out: &out}); err != nil {
			t.Fatalf("drain: %v\n%s", err, out.String())
		}
		t.Logf("%s", out.String())
		for _, e := range exps {
			waitFor(t, e, time.Second, "its verdict", final)
			if e.Status.Phase != v1alpha1.PhaseAborted {
				t.Errorf("%s: %s (%s), want Aborted", e.Name, e.Status.Phase, e.Status.Message)
			}
			for _, rec := range e.Status.Records {
				if rec.RecoveredAt == nil {
					t.Errorf("%s: record %+v not recovered when drain returned", e.Name, rec)
				}
			}
		}
		if !strings.Contains(out.String(), "every fault is recovered") {
			t.Errorf("drain's output lacks the all-clear:\n%s", out.String())
		}
	})

	t.Run("drain that runs out of time names what is left, until when, and how to clear it", func(t *testing.T) {
		e := running(t, "node-a")
		var out bytes.Buffer
		// A clock that never moves and no time to wait: the first look is
		// the last, before any agent could report.
		err := controller.Drain(ctx, k8s, controller.DrainOptions{Timeout: 0, Out: &out, Clock: clocktesting.NewFakeClock(time.Now())})
		if !errors.Is(err, controller.ErrDrainTimeout) {
			t.Fatalf("drain: %v, want %v\n%s", err, controller.ErrDrainTimeout, out.String())
		}
		for _, want := range []string{"experiment default/" + e.Name, "Nothing was uninstalled", "recover each fault by its deadline",
			"kubectl get faultassignments", "helm uninstall --no-hooks"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("drain's report lacks %q:\n%s", want, out.String())
			}
		}
		waitFor(t, e, 15*time.Second, "the abort drain asked for", final)
	})
}
