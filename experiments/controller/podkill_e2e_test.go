//go:build sandbox

package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"faultline.dev/faultline/sandbox/sandboxtest"
)

// A PodKill on real pods, through `faultline run` as a user runs it: by
// Signal, the node's agent sends SIGTERM to the chosen container's main
// process exactly once (the app logs every signal it gets, and drains for
// 12 s, then exits); by Delete, the pod is deleted through the API and its
// Deployment makes a new one.
func TestAPodKillSignalsTheMainProcessOnceOrDeletesThePodThroughTheAPI(t *testing.T) {
	sandboxtest.Parallel(t, sandboxtest.Alone(sandboxtest.Node("real-0")), sandboxtest.Shared(sandboxtest.ControlPlane))
	env := sandboxtest.Get(t)
	c := kube(t, env)
	ctx := context.Background()
	ns := "podkill-" + rand.String(5)
	deployVariant(t, env, c, "hardened", ns)
	kill := func(name, targets, duration, podKill string) string {
		return fmt.Sprintf(`apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: %s, namespace: %s}
spec:
  targets: {pods: {namespaces: [%s], labelSelectors: {app: web}}, %s}
  faults:
  - name: kill
    type: PodKill
    duration: %s
    podKill: %s
`, name, ns, ns, targets, duration, podKill)
	}

	t.Run("SIGTERM by Signal reaches the main process exactly once", func(t *testing.T) {
		exp, code, out := runExperiment(t, env, c, kill("signal", "mode: one", "20s", "{method: Signal, signal: SIGTERM, container: web}"))
		if code != 0 || len(exp.Status.Records) != 1 {
			t.Fatalf("exit %d, records %+v; want 0 and one record:\n%s", code, exp.Status.Records, out)
		}
		rec := exp.Status.Records[0]
		if rec.Round != 1 || rec.InjectedAt == nil || rec.Error != "" || !strings.Contains(rec.Action, "SIGTERM to the main process of container web (containerd://") {
			t.Errorf("record %+v, want round 1, the SIGTERM delivered", rec)
		}
		if exp.Status.TargetSeed == nil {
			t.Error("one pod of three chosen at random, and no seed recorded")
		}
		signalledOnce(t, env, c, rec.Target)
		sandboxtest.WaitFor(t, 30*time.Second, "the signal to be taken off its node", func() bool {
			left, err := assignedFaults(ctx, c, ofExperiment(exp.UID))
			return err == nil && len(left) == 0
		})
		_ = c.Delete(ctx, exp)
	})

	t.Run("Delete deletes the chosen pod through the API, and the Deployment replaces it", func(t *testing.T) {
		var before corev1.PodList
		if err := c.List(ctx, &before, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		exp, code, out := runExperiment(t, env, c, kill("delete", "mode: fixed, value: 1, seed: 42", "20s", "{method: Delete, gracePeriodSeconds: 1}"))
		if code != 0 || len(exp.Status.Records) != 1 || ptr.Deref(exp.Status.TargetSeed, -1) != 42 {
			t.Fatalf("exit %d, records %+v, seed %v; want 0, one record and seed 42:\n%s", code, exp.Status.Records, exp.Status.TargetSeed, out)
		}
		rec := exp.Status.Records[0]
		if rec.Round != 1 || rec.InjectedAt == nil || rec.Error != "" || rec.Action != "delete through the API with grace 1s" || rec.Node == "" {
			t.Errorf("record %+v, want round 1, its node, deleted with grace 1s", rec)
		}
		var killed *corev1.Pod
		for i := range before.Items {
			if ns+"/"+before.Items[i].Name == rec.Target {
				killed = &before.Items[i]
			}
		}
		if killed == nil {
			t.Fatalf("%s was not one of the pods: %d listed", rec.Target, len(before.Items))
		}
		var p corev1.Pod
		if err := c.Get(ctx, client.ObjectKeyFromObject(killed), &p); err == nil && p.UID == killed.UID && p.DeletionTimestamp == nil {
			t.Errorf("%s is still there, not terminating", rec.Target)
		}
		sandboxtest.WaitFor(t, 2*time.Minute, "the Deployment to make up for it", func() bool {
			var d appsv1.Deployment
			return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &d) == nil && d.Status.AvailableReplicas == 3
		})
		_ = c.Delete(ctx, exp)
	})

	t.Run("every 10 s for 45 s kills 4 or 5 times, each among the pods there are then", func(t *testing.T) {
		exp, code, out := runExperiment(t, env, c, kill("interval", "mode: one", "45s", "{method: Delete, gracePeriodSeconds: 1, interval: 10s}"))
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		rounds, pods := map[int32]bool{}, map[string]bool{}
		for _, rec := range exp.Status.Records {
			if rec.InjectedAt == nil || rec.Error != "" || rec.Action != "delete through the API with grace 1s" || rounds[rec.Round] || pods[rec.Target] {
				t.Errorf("record %+v: want one kill per round, each of a pod not killed before", rec)
			}
			rounds[rec.Round], pods[rec.Target] = true, true
		}
		if n := len(rounds); n < 4 || n > 5 || len(exp.Status.PodKills) != 1 || int(exp.Status.PodKills[0].Round) != n {
			t.Errorf("%d kills in rounds %v (status %+v), want 4 or 5, one per round", n, rounds, exp.Status.PodKills)
		}
		_ = c.Delete(ctx, exp)
	})
}
