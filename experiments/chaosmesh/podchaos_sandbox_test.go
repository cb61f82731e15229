//go:build sandbox

package chaosmesh_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	cm "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"faultline.dev/faultline/deploy"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/sandbox"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// Chaos Mesh's own controller manager, built from its module, runs in a
// sandbox of its own (the shared one has none, and tests there install and
// remove Chaos Mesh's CRDs). faultline's controller turns a Rollout fault
// into a PodChaos; Chaos Mesh kills the pod; faultline measures the
// Deployment's recovery and deletes the PodChaos at the end.
func TestAPodChaosFromAnExperimentKillsThePodAndTheRecoveryIsMeasured(t *testing.T) {
	sandboxtest.RequireRoot(t)
	sandboxtest.Hold(t) // the machine, shared
	bins, err := sandboxtest.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	c := sandbox.DefaultConfig()
	c.Name, c.RealNodes, c.SharedKwokNodes, c.IsolatedKwokNodes = "chaosmesh", 1, 0, 0
	c.Timings, c.Faultline, c.ChaosMesh, c.BinDir = sandbox.TimingsFast, true, true, bins
	_ = sandbox.Down(c, nil)
	st, err := sandbox.Up(context.Background(), c, sandbox.NewProgress(os.Stderr), false)
	if err != nil {
		t.Fatalf("sandbox up --faultline --chaos-mesh: %v", err)
	}
	t.Cleanup(func() {
		if err := sandbox.Down(c, sandbox.NewProgress(os.Stderr)); err != nil {
			t.Errorf("sandbox down: %v", err)
		}
	})
	ctx := context.Background()
	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, cm.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	k, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	app, err := os.ReadFile(filepath.Join(sandboxtest.RepoRoot(), "deploy", "examples", "rollout-hardened.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := deploy.Apply(ctx, cfg, app); err != nil {
		t.Fatal(err)
	}
	sandboxtest.WaitFor(t, 2*time.Minute, "web's 3 replicas to be available", func() bool {
		var d appsv1.Deployment
		return k.Get(ctx, types.NamespacedName{Namespace: "rollout", Name: "web"}, &d) == nil && d.Status.AvailableReplicas == 3
	})

	exp := &v1alpha1.Experiment{
		ObjectMeta: metav1.ObjectMeta{Name: "podchaos-kill", Namespace: "rollout"},
		Spec: v1alpha1.ExperimentSpec{
			Engine:  v1alpha1.EngineChaosMesh,
			Targets: v1alpha1.Targets{Deployment: "web"},
			Faults: []v1alpha1.Fault{{
				Name: "kill-an-old-pod", Type: v1alpha1.FaultRollout, Duration: metav1.Duration{Duration: 60 * time.Second},
				Rollout: &v1alpha1.Rollout{
					Trigger: &v1alpha1.RolloutTrigger{Restart: true},
					At:      v1alpha1.RolloutPoint{NewReady: ptr.To[int32](1)},
					Action:  &v1alpha1.RolloutAction{Pods: "Old", Count: 1, Method: "Delete"},
				},
			}},
			Objectives: []v1alpha1.Objective{{Name: "the rollout completes", Expr: "recovery.seconds < 120"}},
		},
	}
	if err := k.Create(ctx, exp); err != nil {
		t.Fatal(err)
	}

	// The PodChaos while it exists: the pod it names, and what Chaos Mesh
	// recorded of its own injection.
	var killed string
	var injected int
	final := func() bool {
		var list cm.PodChaosList
		if err := k.List(ctx, &list, client.InNamespace("rollout")); err == nil {
			for _, pc := range list.Items {
				for _, p := range pc.Spec.Selector.Pods["rollout"] {
					killed = p
				}
				for _, r := range pc.Status.Experiment.Records {
					injected = max(injected, r.InjectedCount)
				}
			}
		}
		return k.Get(ctx, client.ObjectKeyFromObject(exp), exp) == nil && exp.Status.Phase.IsFinal()
	}
	sandboxtest.WaitFor(t, 4*time.Minute, "the experiment's verdict", final)
	if exp.Status.Verdict != v1alpha1.VerdictPassed {
		t.Errorf("verdict %s (%s), want Passed", exp.Status.Verdict, exp.Status.Message)
	}
	if killed == "" || injected < 1 {
		t.Fatalf("no PodChaos that Chaos Mesh injected was seen (pod %q, injected %d); records %+v", killed, injected, exp.Status.Records)
	}
	var pod corev1.Pod
	if err := k.Get(ctx, types.NamespacedName{Namespace: "rollout", Name: killed}, &pod); !apierrors.IsNotFound(err) && pod.DeletionTimestamp.IsZero() {
		t.Errorf("pod %s is still there (%v): Chaos Mesh did not kill it", killed, err)
	}
	rec, err := strconv.ParseFloat(exp.Status.Measurements["recovery.seconds"], 64)
	if err != nil || rec <= 0 {
		t.Errorf("recovery.seconds = %q, want the measured rescheduling and rollout time", exp.Status.Measurements["recovery.seconds"])
	}
	sandboxtest.WaitFor(t, 30*time.Second, "the PodChaos to be deleted after the verdict", func() bool {
		var list cm.PodChaosList
		return k.List(ctx, &list, client.InNamespace("rollout")) == nil && len(list.Items) == 0
	})
	t.Logf("Chaos Mesh killed %s (injectedCount %d); recovery.seconds=%s; records: %+v", killed, injected, exp.Status.Measurements["recovery.seconds"], exp.Status.Records)
}
