package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// DrainOptions bound a Drain.
type DrainOptions struct {
	// Timeout is how long to wait for every fault to be recovered.
	Timeout time.Duration
	// Interval is how often to look, and to say where it stands.
	Interval time.Duration
	// Out receives the progress lines and, on a timeout, what is left.
	Out   io.Writer
	Clock clock.Clock
	// AgentNamespace holds the FaultAssignments whose faults the agents
	// report; v1alpha1.DefaultAgentNamespace when empty.
	AgentNamespace string
}

// ErrDrainTimeout is returned, wrapped with what is left, when faults are
// still in place at the timeout.
var ErrDrainTimeout = errors.New("faults still in place")

// Drain is what must happen before faultline's agents are removed (the
// chart's pre-delete hook): it aborts every experiment that is not final,
// then waits until every experiment is final and no agent reports a fault
// still injected. On a timeout it says which faults are left, until when
// their agents would hold them, and how to clear them.
func Drain(ctx context.Context, c client.Client, o DrainOptions) error {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Interval <= 0 {
		o.Interval = 2 * time.Second
	}
	if o.AgentNamespace == "" {
		o.AgentNamespace = v1alpha1.DefaultAgentNamespace
	}
	start := o.Clock.Now()
	var exps v1alpha1.ExperimentList
	if err := c.List(ctx, &exps); err != nil {
		return fmt.Errorf("list experiments: %w", err)
	}
	aborted := 0
	for i := range exps.Items {
		e := &exps.Items[i]
		if e.Status.Phase.IsFinal() || e.AbortRequested() {
			continue
		}
		if err := c.Patch(ctx, e, client.RawPatch(types.MergePatchType, v1alpha1.AbortPatch())); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("abort experiment %s/%s: %w", e.Namespace, e.Name, err)
		}
		aborted++
	}
	fmt.Fprintf(o.Out, "faultline: aborted %d running experiment(s); waiting up to %s for every fault to be recovered\n", aborted, o.Timeout)
	for {
		left, err := faultsLeft(ctx, c, o.AgentNamespace)
		if err != nil {
			return err
		}
		elapsed := o.Clock.Since(start)
		if len(left) == 0 {
			fmt.Fprintf(o.Out, "faultline: every fault is recovered (%s); the agents may go\n", elapsed.Round(time.Second))
			return nil
		}
		if elapsed >= o.Timeout {
			fmt.Fprintf(o.Out, "faultline: %d left after %s:\n  %s\n%s", len(left), o.Timeout, strings.Join(left.lines(), "\n  "), left.howToClear())
			return fmt.Errorf("%w: %d after %s", ErrDrainTimeout, len(left), o.Timeout)
		}
		fmt.Fprintf(o.Out, "faultline: %s: waiting for %s\n", elapsed.Round(time.Second), left.summary())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-o.Clock.After(min(o.Interval, o.Timeout-elapsed)):
		}
	}
}

// leftover is an experiment not final, or a fault an agent holds.
type leftover struct {
	experiment string // NAMESPACE/NAME
	phase      v1alpha1.Phase
	node, id   string // set for a fault
	deadline   time.Time
}

type leftovers []leftover

// faultsLeft lists what still stands between now and the agents' removal.
func faultsLeft(ctx context.Context, c client.Client, agentNamespace string) (leftovers, error) {
	var exps v1alpha1.ExperimentList
	if err := c.List(ctx, &exps); err != nil {
		return nil, fmt.Errorf("list experiments: %w", err)
	}
	var out leftovers
	for _, e := range exps.Items {
		if !e.Status.Phase.IsFinal() {
			out = append(out, leftover{experiment: e.Namespace + "/" + e.Name, phase: e.Status.Phase})
		}
	}
	var fas v1alpha1.FaultAssignmentList
	if err := c.List(ctx, &fas, client.InNamespace(agentNamespace)); err != nil {
		return nil, fmt.Errorf("list fault assignments: %w", err)
	}
	for _, fa := range fas.Items {
		assigned := map[string]v1alpha1.AssignedFault{}
		for _, f := range fa.Spec.Faults {
			assigned[f.ID] = f
		}
		for _, s := range fa.Status.Faults {
			if s.State != v1alpha1.FaultInjected {
				continue
			}
			a := assigned[s.ID]
			out = append(out, leftover{experiment: a.Experiment.Namespace + "/" + a.Experiment.Name, node: fa.Spec.NodeName, id: s.ID, deadline: a.Deadline.Time})
		}
	}
	return out, nil
}

func (l leftovers) summary() string {
	exps, faults := 0, 0
	for _, x := range l {
		if x.node == "" {
			exps++
		} else {
			faults++
		}
	}
	return fmt.Sprintf("%d experiment(s) to end, %d fault(s) to recover", exps, faults)
}

func (l leftovers) lines() []string {
	var out []string
	for _, x := range l {
		if x.node == "" {
			out = append(out, fmt.Sprintf("experiment %s, phase %s", x.experiment, cmp.Or(string(x.phase), "(none yet)")))
			continue
		}
		out = append(out, fmt.Sprintf("fault %s of experiment %s on node %s, injected, deadline %s", x.id, x.experiment, x.node, x.deadline.UTC().Format(time.RFC3339)))
	}
	slices.Sort(out)
	return out
}

// howToClear says what the user can do: the agents are still installed,
// and recover each fault by its deadline.
func (l leftovers) howToClear() string {
	var latest time.Time
	for _, x := range l {
		if x.deadline.After(latest) {
			latest = x.deadline
		}
	}
	by := ""
	if !latest.IsZero() {
		by = " (the latest at " + latest.UTC().Format(time.RFC3339) + ")"
	}
	return "Nothing was uninstalled: the agents are still there and recover each fault by its deadline" + by + ".\n" +
		"See them with: kubectl get faultassignments -A -o wide; kubectl get experiments -A\n" +
		"Then run helm uninstall again. To remove faultline now anyway: helm uninstall --no-hooks.\n" +
		"Without agents, a network loss still ends at its deadline (the kernel's timeout; its empty table\n" +
		"stays in the node's network namespace until an agent returns), a memory stressor dies with its\n" +
		"agent, and a disk latency tracer detaches when its agent dies.\n"
}
