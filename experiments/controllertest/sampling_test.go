package controllertest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// spec.targets.mode chooses among the matching pods at random, as the
// controller plans them; a dry run shows the choice without injecting.
func TestTheModeChoosesAmongTheTargetsAtRandomAndTheSeedReplaysIt(t *testing.T) {
	node(t, "node-a")
	ten := namespace(t, true, 10, "node-a")
	four := namespace(t, true, 4, "node-a")

	t.Run("fixed-percent 50 over 10 pods chooses 5, and says so with the seed", func(t *testing.T) {
		e := experiment("default", onPods(ten), dryRun(), choosing(v1alpha1.TargetModeFixedPercent, 50, nil))
		create(t, e)
		waitFor(t, e, 10*time.Second, "a verdict", final)
		if len(e.Status.Targets) != 5 || e.Status.TargetSeed == nil {
			t.Fatalf("targets %v, seed %v: want 5 and the seed", e.Status.Targets, e.Status.TargetSeed)
		}
		if !hasEntry(e, v1alpha1.ReasonTargetsChosen, "5 target(s) chosen at random (mode fixed-percent, seed ") {
			t.Errorf("no TargetsChosen entry with the seed:%s", timeline(e))
		}
	})

	t.Run("the same seed over the same pods chooses the same ones", func(t *testing.T) {
		first := experiment("default", onPods(ten), dryRun(), choosing(v1alpha1.TargetModeFixed, 3, nil))
		create(t, first)
		waitFor(t, first, 10*time.Second, "a verdict", final)
		if first.Status.TargetSeed == nil {
			t.Fatal("no seed recorded for a random choice")
		}
		for range 3 {
			again := experiment("default", onPods(ten), dryRun(), choosing(v1alpha1.TargetModeFixed, 3, first.Status.TargetSeed))
			create(t, again)
			waitFor(t, again, 10*time.Second, "a verdict", final)
			if !slices.Equal(again.Status.Targets, first.Status.Targets) || *again.Status.TargetSeed != *first.Status.TargetSeed {
				t.Fatalf("seed %d chose %v, then %v (seed %v)", *first.Status.TargetSeed, first.Status.Targets, again.Status.Targets, ptr.Deref(again.Status.TargetSeed, -1))
			}
		}
	})

	t.Run("over 20 runs without a seed, every pod is chosen at least once", func(t *testing.T) {
		// Two of four each run: a pod is missed by all 20 with odds 0.5^20.
		runs := make([]*v1alpha1.Experiment, 20)
		for i := range runs {
			runs[i] = experiment("default", onPods(four), dryRun(), choosing(v1alpha1.TargetModeFixed, 2, nil))
			create(t, runs[i])
		}
		chosen, seeds := map[string]int{}, map[int64]bool{}
		for _, e := range runs {
			waitFor(t, e, 20*time.Second, "a verdict", final)
			if len(e.Status.Targets) != 2 || e.Status.TargetSeed == nil {
				t.Fatalf("targets %v, seed %v: want 2 and the seed", e.Status.Targets, e.Status.TargetSeed)
			}
			for _, p := range e.Status.Targets {
				chosen[p]++
			}
			seeds[*e.Status.TargetSeed] = true
		}
		if len(chosen) != 4 {
			t.Errorf("chosen over 20 runs: %v, want all 4 pods", chosen)
		}
		if len(seeds) < 19 {
			t.Errorf("%d distinct seeds over 20 runs", len(seeds))
		}
	})

	t.Run("node targets are chosen the same way", func(t *testing.T) {
		node(t, "node-b")
		node(t, "node-c")
		e := experiment("default", onNodes("node-a", "node-b", "node-c"), dryRun(), choosing(v1alpha1.TargetModeOne, 0, ptr.To[int64](7)))
		create(t, e)
		waitFor(t, e, 10*time.Second, "a verdict", final)
		if len(e.Status.Targets) != 1 || !strings.HasPrefix(e.Status.Targets[0], "node-") || ptr.Deref(e.Status.TargetSeed, -1) != 7 {
			t.Errorf("targets %v, seed %v: want one node, seed 7", e.Status.Targets, ptr.Deref(e.Status.TargetSeed, -1))
		}
	})
}

// hasEntry reports whether the timeline has an entry of reason whose
// message contains text.
func hasEntry(e *v1alpha1.Experiment, reason, text string) bool {
	for _, x := range e.Status.Timeline {
		if x.Reason == reason && strings.Contains(x.Message, text) {
			return true
		}
	}
	return false
}
