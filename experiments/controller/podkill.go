package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// podKillDriver kills the target pods at the fault's start and, with an
// interval, again every interval until its end, each round choosing anew
// among the pods that match then (a Deployment's new pods included). As at
// a Rollout's point, a round's choice is written with the status before
// any pod is killed: a round retried after a lost status write kills the
// same pods, and a controller that restarts mid-fault goes on from the
// round it had begun. Nothing is undone at the end: a kill is over when it
// is made.
type podKillDriver struct{ nothingToDo }

// A PodKill acts when its rounds come, through the engine.
func (podKillDriver) actsThroughEngine() {}

func (podKillDriver) Drive(ctx context.Context, r *ExperimentReconciler, exp *v1alpha1.Experiment) error {
	now := r.Clock.Now()
	for _, f := range faultsOf(exp, podKillDriver{}) {
		start, end := faultWindow(exp, f)
		if start.IsZero() || now.Before(start) || !now.Before(end) {
			continue
		}
		if err := r.podKillRound(ctx, exp, f, roundAt(f.PodKill, start, now), end); err != nil {
			return fmt.Errorf("fault %s: %w", f.Name, err)
		}
	}
	return nil
}

// Missed: a PodKill that killed no pod in any round never happened.
func (podKillDriver) Missed(exp *v1alpha1.Experiment) []string {
	var out []string
	for _, f := range faultsOf(exp, podKillDriver{}) {
		killed := false
		for _, rec := range exp.Status.Records {
			killed = killed || (rec.Fault == f.Name && rec.Error == "" && rec.Superseded == "" && rec.Action != "")
		}
		if !killed {
			out = append(out, fmt.Sprintf("%s: no pod was killed (see the records)", f.Name))
		}
	}
	return out
}

// roundAt is the round due at now, from 1: one at the start, and one more
// every interval.
func roundAt(k *v1alpha1.PodKill, start, now time.Time) int32 {
	if k.Interval == nil || k.Interval.Duration <= 0 {
		return 1
	}
	return int32(now.Sub(start)/k.Interval.Duration) + 1
}

// podKillRecord is the fault's record of its rounds, made on first use.
func podKillRecord(exp *v1alpha1.Experiment, f *v1alpha1.Fault) *v1alpha1.PodKillRecord {
	for i := range exp.Status.PodKills {
		if exp.Status.PodKills[i].Fault == f.Name {
			return &exp.Status.PodKills[i]
		}
	}
	exp.Status.PodKills = append(exp.Status.PodKills, v1alpha1.PodKillRecord{Fault: f.Name})
	return &exp.Status.PodKills[len(exp.Status.PodKills)-1]
}

// podKillRound makes the kills of round due, once: it chooses the pods
// and writes the choice, then kills them.
func (r *ExperimentReconciler) podKillRound(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault, due int32, end time.Time) error {
	rec := podKillRecord(exp, f)
	if rec.Round > due || (rec.Round == due && rec.Done) {
		return nil
	}
	// The round was chosen, and the choice written, by an earlier pass
	// whose later write was lost: its kills may be made already.
	retry := rec.Round == due
	if !retry {
		// Rounds that came and went while no controller acted are not
		// made up for: one kill now, and the count of those missed.
		missed := due - rec.Round - 1
		if rec.Round > 0 && !rec.Done {
			missed++
		}
		chosen, uids, err := r.podKillChoice(ctx, exp, f, due)
		if err != nil {
			return err
		}
		rec.Round, rec.Chosen, rec.ChosenUIDs, rec.Done, rec.Skipped = due, chosen, uids, false, rec.Skipped+missed
		written := exp.DeepCopy()
		if err := r.Status().Update(ctx, written); err != nil {
			return fmt.Errorf("write the choice of round %d: %w", due, err)
		}
		exp.ResourceVersion = written.ResourceVersion
		rec = podKillRecord(exp, f)
	}
	k := f.PodKill
	pods, err := r.chosenPods(ctx, exp, f, rec.Chosen, rec.ChosenUIDs, due, retry)
	if err != nil {
		return err
	}
	if len(pods) == 0 {
		// Nothing left to act on (each pod's record says why): under
		// Chaos Mesh an object of no pods would be refused.
		rec.Done = true
		return nil
	}
	act := podAction{del: k.Method != "Signal", grace: k.GracePeriodSeconds, signal: k.EffectiveSignal(), container: k.Container,
		containerField: fmt.Sprintf("spec.faults[%s].podKill.container", f.Name), round: due}
	if err := r.engineFor(exp).Act(ctx, exp, f, act, pods, end); err != nil {
		return err
	}
	rec.Done = true
	how := "delete"
	if !act.del {
		how = act.signal + " to"
	}
	r.note(exp, false, v1alpha1.ReasonPodsKilled, "fault %s: round %d: %s %d pod(s): %v", f.Name, due, how, len(rec.Chosen), rec.Chosen)
	return nil
}

// podKillChoice is round's pods, with their UIDs: the plan's targets for
// the first, and for the next ones a new choice among the pods that match
// then.
func (r *ExperimentReconciler) podKillChoice(ctx context.Context, exp *v1alpha1.Experiment, f *v1alpha1.Fault, round int32) ([]string, []types.UID, error) {
	var pods []*corev1.Pod
	if round == 1 {
		for _, key := range exp.Status.Targets {
			ns, name := splitKey(key)
			var p corev1.Pod
			switch err := r.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &p); {
			case apierrors.IsNotFound(err):
				p.Namespace, p.Name = ns, name // gone since the plan: said when read again
			case err != nil:
				return nil, nil, err
			}
			pods = append(pods, &p)
		}
	} else {
		targets, _, err := r.chooseTargets(ctx, exp, round)
		var safety *SafetyError
		switch {
		case errors.As(err, &safety):
			// Nothing matches now (every pod gone, or the bounds allow
			// none): an empty round, said in the timeline, not an error
			// that stops the experiment.
			r.note(exp, true, v1alpha1.ReasonPodsKilled, "fault %s: round %d: no pod to kill: %s", f.Name, round, safety.Error())
			return []string{}, nil, nil
		case err != nil:
			return nil, nil, err
		}
		for _, t := range targets {
			pods = append(pods, t.pod)
		}
	}
	keys, uids := make([]string, 0, len(pods)), make([]types.UID, 0, len(pods))
	for _, p := range pods {
		keys, uids = append(keys, p.Namespace+"/"+p.Name), append(uids, p.UID)
	}
	return keys, uids, nil
}
