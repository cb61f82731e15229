package chaosmesh

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cm "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/schema"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// An experiment under engine chaos-mesh, built by options.
type option func(*v1alpha1.Experiment)

func experiment(name string, opts ...option) *v1alpha1.Experiment {
	e := &v1alpha1.Experiment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: "6f1c2a4e-0d3b-4c55-9a7e-1b2c3d4e5f60"},
		Spec:       v1alpha1.ExperimentSpec{Engine: v1alpha1.EngineChaosMesh},
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

func onPods() option {
	return func(e *v1alpha1.Experiment) {
		e.Spec.Targets.Pods = &cm.PodSelectorSpec{GenericSelectorSpec: cm.GenericSelectorSpec{Namespaces: []string{"shop"}, LabelSelectors: map[string]string{"app": "web"}}}
	}
}

func onNodes(names ...string) option {
	return func(e *v1alpha1.Experiment) { e.Spec.Targets.Nodes = &v1alpha1.NodeTargets{Names: names} }
}

func onDeployment(name string) option {
	return func(e *v1alpha1.Experiment) { e.Spec.Targets.Deployment = name }
}

func fault(name string, d time.Duration, set func(*v1alpha1.Fault)) option {
	return func(e *v1alpha1.Experiment) {
		f := v1alpha1.Fault{Name: name, Duration: metav1.Duration{Duration: d}}
		set(&f)
		e.Spec.Faults = append(e.Spec.Faults, f)
	}
}

func networkLoss(name string, n v1alpha1.NetworkLoss) option {
	return fault(name, 90*time.Second, func(f *v1alpha1.Fault) { f.Type, f.NetworkLoss = v1alpha1.FaultNetworkLoss, &n })
}

func diskLatency(name string, d v1alpha1.DiskLatency) option {
	return fault(name, 2*time.Minute, func(f *v1alpha1.Fault) { f.Type, f.DiskLatency = v1alpha1.FaultDiskLatency, &d })
}

func memoryPressure(name string, m v1alpha1.MemoryPressure) option {
	return fault(name, time.Minute, func(f *v1alpha1.Fault) { f.Type, f.MemoryPressure = v1alpha1.FaultMemoryPressure, &m })
}

func rollout(name string, a v1alpha1.RolloutAction) option {
	return fault(name, 5*time.Minute, func(f *v1alpha1.Fault) {
		one := int32(1)
		f.Type, f.Rollout = v1alpha1.FaultRollout, &v1alpha1.Rollout{Trigger: &v1alpha1.RolloutTrigger{Restart: true}, At: v1alpha1.RolloutPoint{NewReady: &one}, Action: &a}
	})
}

func podKill(name string, k v1alpha1.PodKill) option {
	return fault(name, time.Minute, func(f *v1alpha1.Fault) { f.Type, f.PodKill = v1alpha1.FaultPodKill, &k })
}

func surge(name string) option {
	return fault(name, time.Minute, func(f *v1alpha1.Fault) { f.Type, f.Surge = v1alpha1.FaultSurge, &v1alpha1.Surge{Replicas: 3} })
}

func ms(n int) *metav1.Duration {
	return &metav1.Duration{Duration: time.Duration(n) * time.Millisecond}
}

func quantity(s string) *resource.Quantity { q := resource.MustParse(s); return &q }

// Targets the controller would have resolved.
var (
	webPods    = Targets{Pods: map[string][]string{"shop": {"web-7d9f-b2x", "web-7d9f-a1q"}}}
	nodePods   = Targets{Nodes: []string{"real-0"}, Namespaces: []string{"shop", "cart"}}
	etcdVolume = Targets{Pods: map[string][]string{"kube-system": {"etcd-real-0"}}, VolumePath: "/var/lib/etcd"}
	web        = &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		TerminationGracePeriodSeconds: func() *int64 { s := int64(45); return &s }(),
		Containers:                    []corev1.Container{{Name: "web"}, {Name: "envoy"}},
	}}}}
	oldWebPods = Targets{Pods: map[string][]string{"shop": {"web-5c8b-x7k"}}, Deployment: web}
)

// webhookObject is what Chaos Mesh's admission webhook calls on its kinds.
type webhookObject interface {
	client.Object
	Default(context.Context, runtime.Object) error
	Validate() ([]string, error)
}

func TestObjectTranslatesEachFaultGolden(t *testing.T) {
	tests := map[string]struct {
		exp     *v1alpha1.Experiment
		targets Targets
		golden  string
	}{
		"a node network loss of 30% of sent packets becomes a NetworkChaos on that node's pods": {
			experiment("lossy-node", onNodes("real-0"), networkLoss("lossy", v1alpha1.NetworkLoss{LossPercent: 30, Direction: "egress"})),
			nodePods, "node-loss.golden.yaml"},
		"a pod network loss of 30% toward peers becomes a loss toward those external targets": {
			experiment("lossy-pods", onPods(), networkLoss("lossy", v1alpha1.NetworkLoss{LossPercent: 30, Direction: "egress", Peers: []string{"10.96.0.0/12", "10.0.0.0/8"}})),
			webPods, "pod-loss-peers.golden.yaml"},
		"a node loss of 100% toward the API server becomes a partition from its addresses, both ways": {
			experiment("cut", onNodes("real-0"), networkLoss("cut", v1alpha1.NetworkLoss{LossPercent: 100, Direction: "both", TowardAPIServer: true})),
			Targets{Nodes: []string{"real-0"}, Namespaces: []string{"shop"}, APIServer: []string{"10.200.0.1"}}, "partition-apiserver.golden.yaml"},
		"a loss of 100% of received packets from peers becomes a partition from them": {
			experiment("deaf", onPods(), networkLoss("deaf", v1alpha1.NetworkLoss{LossPercent: 100, Direction: "ingress", Peers: []string{"10.1.0.0/16"}})),
			webPods, "partition-ingress.golden.yaml"},
		"loss, delay and corruption together become one netem NetworkChaos on the device": {
			experiment("flaky", onPods(), networkLoss("flaky", v1alpha1.NetworkLoss{LossPercent: 5, Direction: "egress", Delay: ms(1500), CorruptPercent: 2, Device: "eth1"})),
			webPods, "netem.golden.yaml"},
		"a delay alone becomes a delay NetworkChaos": {
			experiment("slow", onPods(), networkLoss("slow", v1alpha1.NetworkLoss{Direction: "egress", Delay: ms(200)})),
			webPods, "delay.golden.yaml"},
		"a disk latency on etcd's WAL becomes an IOChaos on the fsyncs of its volume": {
			experiment("slow-disk", onPods(), diskLatency("slow-wal", v1alpha1.DiskLatency{Delay: metav1.Duration{Duration: 100 * time.Millisecond}, Percent: ptr.To[int32](50), PathPrefix: "/var/lib/etcd/member/wal/"})),
			etcdVolume, "disk-latency.golden.yaml"},
		"writes and pwrite64 of a named container become the write method, fsync and fdatasync one fsync": {
			experiment("slow-writes", onPods(), diskLatency("slow-writes", v1alpha1.DiskLatency{Container: "etcd", Syscalls: []string{"pwrite64", "fdatasync", "write", "fsync"}, Delay: metav1.Duration{Duration: 2 * time.Second}, Percent: ptr.To[int32](100), PathPrefix: "/var/lib/etcd"})),
			etcdVolume, "disk-latency-writes.golden.yaml"},
		"a memory pressure of 200Mi becomes a StressChaos of 209715200 bytes in the named container": {
			experiment("squeeze", onPods(), memoryPressure("squeeze", v1alpha1.MemoryPressure{Size: quantity("200Mi"), RampPerSecond: *quantity("64Mi"), Container: "web"})),
			webPods, "memory.golden.yaml"},
		"a rollout that deletes old pods becomes a pod-kill with the pods' own grace period": {
			experiment("roll-delete", onDeployment("web"), rollout("kill", v1alpha1.RolloutAction{Pods: "Old", Count: 1, Method: "Delete"})),
			oldWebPods, "rollout-delete.golden.yaml"},
		"a rollout that deletes with a grace period of 0 becomes a pod-kill at once": {
			experiment("roll-now", onDeployment("web"), rollout("kill", v1alpha1.RolloutAction{Method: "Delete", GracePeriodSeconds: func() *int64 { var z int64; return &z }()})),
			oldWebPods, "rollout-delete-now.golden.yaml"},
		"a rollout that sends SIGKILL becomes a container-kill of the first container": {
			experiment("roll-kill", onDeployment("web"), rollout("sigkill", v1alpha1.RolloutAction{Pods: "Old", Count: 1, Method: "Signal", Signal: "SIGKILL"})),
			oldWebPods, "rollout-sigkill.golden.yaml"},
		"a pod kill through the API with a grace period becomes a pod-kill of the chosen pods": {
			experiment("kill", onPods(), podKill("kill", v1alpha1.PodKill{Method: "Delete", GracePeriodSeconds: func() *int64 { g := int64(5); return &g }()})),
			webPods, "pod-kill-delete.golden.yaml"},
		"a pod kill by SIGKILL becomes a container-kill of the container named": {
			experiment("crash", onPods(), podKill("crash", v1alpha1.PodKill{Method: "Signal", Container: "web"})),
			webPods, "pod-kill-sigkill.golden.yaml"},
		"a long experiment name is cut to a DNS label, with a hash of the whole": {
			experiment("a-very-long-experiment-name-that-a-scheduler-made.with-a-slot-2026-01-01t00", onPods(), networkLoss("lossy", v1alpha1.NetworkLoss{LossPercent: 30, Direction: "egress"})),
			webPods, "long-name.golden.yaml"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if errs, err := schema.Check(tc.exp); err != nil || len(errs) > 0 {
				t.Fatalf("test bug: the experiment does not validate: %v %v", err, errs)
			}
			obj, err := Object(tc.exp, tc.exp.Spec.Faults[0], tc.targets)
			if err != nil {
				t.Fatal(err)
			}
			got, err := yaml.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("differs from %s (go test -update rewrites it):\n%s", path, got)
			}
			again, _ := Object(tc.exp, tc.exp.Spec.Faults[0], tc.targets)
			if b, _ := yaml.Marshal(again); !bytes.Equal(b, got) {
				t.Error("a second translation differs")
			}
			// What Chaos Mesh's admission webhook would do: default, then
			// validate.
			w, ok := obj.DeepCopyObject().(webhookObject)
			if !ok {
				t.Fatalf("%T is not a Chaos Mesh kind with a webhook", obj)
			}
			if err := w.Default(context.Background(), w); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Validate(); err != nil {
				t.Errorf("Chaos Mesh's webhook refuses it: %v", err)
			}
			if errs := validation.IsDNS1123Label(obj.GetName()); len(errs) > 0 {
				t.Errorf("name %q: %v", obj.GetName(), errs)
			}
			for k, v := range obj.GetLabels() {
				if errs := validation.IsValidLabelValue(v); len(errs) > 0 || v == "" {
					t.Errorf("label %s=%q: %v", k, v, errs)
				}
			}
		})
	}
}

func TestObjectRefusesWhatChaosMeshCannotExpressNamingTheField(t *testing.T) {
	tests := map[string]struct {
		exp     *v1alpha1.Experiment
		targets Targets
		want    []string
	}{
		"a surge has no Chaos Mesh counterpart": {
			experiment("burst", onDeployment("web"), surge("burst")), oldWebPods,
			[]string{"spec.faults[0].type", "surge: not under engine chaos-mesh"}},
		"a loss on some ports cannot be matched": {
			experiment("lossy", onPods(), networkLoss("lossy", v1alpha1.NetworkLoss{LossPercent: 30, Direction: "egress", Ports: []int32{443}})), webPods,
			[]string{"spec.faults[0].networkLoss.ports", "a NetworkChaos cannot match ports"}},
		"a partial loss both ways cannot be expressed": {
			experiment("lossy", onPods(), networkLoss("lossy", v1alpha1.NetworkLoss{LossPercent: 30})), webPods,
			[]string{"spec.faults[0].networkLoss.direction", "must be egress"}},
		"a partition from the API server needs its resolved addresses": {
			experiment("cut", onNodes("real-0"), networkLoss("cut", v1alpha1.NetworkLoss{LossPercent: 100, TowardAPIServer: true})), nodePods,
			[]string{"spec.faults[0].networkLoss.towardAPIServer", "Targets.APIServer"}},
		"a node loss needs the opted-in namespaces": {
			experiment("lossy", onNodes("real-0"), networkLoss("lossy", v1alpha1.NetworkLoss{LossPercent: 30, Direction: "egress"})), Targets{Nodes: []string{"real-0"}},
			[]string{"spec.targets.nodes", "Targets.Namespaces"}},
		"a pod fault needs resolved pods": {
			experiment("lossy", onPods(), networkLoss("lossy", v1alpha1.NetworkLoss{LossPercent: 30, Direction: "egress"})), Targets{Pods: map[string][]string{"shop": nil}},
			[]string{"spec.faults[0]", "Targets.Pods"}},
		"a disk latency of a process cannot be expressed": {
			experiment("disk", onPods(), diskLatency("slow", v1alpha1.DiskLatency{Process: &v1alpha1.ProcessSelector{Name: "etcd"}, Delay: *ms(100), Percent: ptr.To[int32](100), PathPrefix: "/var/lib/etcd"})), etcdVolume,
			[]string{"spec.faults[0].diskLatency.process", "not a process"}},
		"a disk latency with jitter cannot be expressed": {
			experiment("disk", onPods(), diskLatency("slow", v1alpha1.DiskLatency{Jitter: ms(10), Delay: *ms(100), Percent: ptr.To[int32](100), PathPrefix: "/var/lib/etcd"})), etcdVolume,
			[]string{"spec.faults[0].diskLatency.jitter", "drop jitter"}},
		"sync_file_range is not a file operation Chaos Mesh sees": {
			experiment("disk", onPods(), diskLatency("slow", v1alpha1.DiskLatency{Syscalls: []string{"fsync", "sync_file_range"}, Delay: *ms(100), Percent: ptr.To[int32](100), PathPrefix: "/var/lib/etcd"})), etcdVolume,
			[]string{"spec.faults[0].diskLatency.syscalls[1]", "only fsync, fdatasync, write and pwrite64"}},
		"a disk latency needs the volume that holds the path": {
			experiment("disk", onPods(), diskLatency("slow", v1alpha1.DiskLatency{Delay: *ms(100), Percent: ptr.To[int32](100), PathPrefix: "/var/lib/etcd"})), webPods,
			[]string{"spec.faults[0].diskLatency.pathPrefix", "Targets.VolumePath"}},
		"a path outside the volume is refused": {
			experiment("disk", onPods(), diskLatency("slow", v1alpha1.DiskLatency{Delay: *ms(100), Percent: ptr.To[int32](100), PathPrefix: "/var/lib/etcd-backup"})), etcdVolume,
			[]string{"spec.faults[0].diskLatency.pathPrefix", "not inside the volume mounted at /var/lib/etcd"}},
		"a share of 0 calls, which Chaos Mesh would read as 100, is refused": {
			experiment("disk", onPods(), diskLatency("slow", v1alpha1.DiskLatency{Delay: *ms(100), Percent: ptr.To[int32](0), PathPrefix: "/var/lib/etcd"})), etcdVolume,
			[]string{"spec.faults[0].diskLatency.percent", "Chaos Mesh reads 0 as 100"}},
		"a share of the memory limit is refused": {
			experiment("mem", onPods(), memoryPressure("squeeze", v1alpha1.MemoryPressure{Percent: 80, RampPerSecond: *quantity("64Mi")})), webPods,
			[]string{"spec.faults[0].memoryPressure.percent", "give size"}},
		"a memory pressure on nodes is refused": {
			experiment("mem", onNodes("real-0"), memoryPressure("squeeze", v1alpha1.MemoryPressure{Size: quantity("1Gi"), RampPerSecond: *quantity("64Mi")})), nodePods,
			[]string{"spec.targets.nodes", "need targets.pods"}},
		"a SIGTERM cannot be sent to a container": {
			experiment("roll", onDeployment("web"), rollout("sigterm", v1alpha1.RolloutAction{Method: "Signal", Signal: "SIGTERM"})), oldWebPods,
			[]string{"spec.faults[0].rollout.action", "Chaos Mesh cannot send SIGTERM"}},
		"a container-kill needs the container or the Deployment": {
			experiment("roll", onDeployment("web"), rollout("sigkill", v1alpha1.RolloutAction{Signal: "SIGKILL"})), Targets{Pods: oldWebPods.Pods},
			[]string{"spec.faults[0].rollout.action.container", "without a Deployment target"}},
		"a pod-kill needs a grace period or the Deployment": {
			experiment("roll", onDeployment("web"), rollout("kill", v1alpha1.RolloutAction{Method: "Delete"})), Targets{Pods: oldWebPods.Pods},
			[]string{"spec.faults[0].rollout.action.gracePeriodSeconds", "without a Deployment target"}},
		"a pod kill through the API needs its grace period": {
			experiment("kill", onPods(), podKill("kill", v1alpha1.PodKill{Method: "Delete"})), webPods,
			[]string{"spec.faults[0].podKill", "method Delete with gracePeriodSeconds"}},
		"a pod kill by SIGKILL needs its container": {
			experiment("kill", onPods(), podKill("kill", v1alpha1.PodKill{Method: "Signal"})), webPods,
			[]string{"spec.faults[0].podKill", "method Signal with container"}},
		"a pod kill by SIGTERM cannot be sent to a container": {
			experiment("kill", onPods(), podKill("kill", v1alpha1.PodKill{Method: "Signal", Signal: "SIGTERM", Container: "web"})), webPods,
			[]string{"spec.faults[0].podKill", "signal SIGKILL"}},
		"a pod kill every interval is refused": {
			experiment("kill", onPods(), podKill("kill", v1alpha1.PodKill{Method: "Delete", GracePeriodSeconds: func() *int64 { g := int64(0); return &g }(), Interval: &metav1.Duration{Duration: 10 * time.Second}})), webPods,
			[]string{"spec.faults[0].podKill", "kills once per object"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			obj, err := Object(tc.exp, tc.exp.Spec.Faults[0], tc.targets)
			if err == nil {
				got, _ := yaml.Marshal(obj)
				t.Fatalf("translated, want a refusal:\n%s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestNameIsABoundedDNSLabel(t *testing.T) {
	long := strings.Repeat("x", 70)
	tests := map[string]struct {
		experiment, fault string
		want              string // exact, or empty to check the shape only
	}{
		"a short name is the experiment's and the fault's": {"cut", "partition", "cut-partition"},
		"a name too long for a label is cut, with a hash":  {long, "cut", ""},
		"a dotted experiment name becomes a label":         {"web.v2", "cut", ""},
		"an upper-case name (not from the API) is lowered": {"Web", "cut", ""},
		"a name of 63 characters exactly is kept as it is": {strings.Repeat("y", 59), "cut", strings.Repeat("y", 59) + "-cut"},
	}
	seen := map[string]string{}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Name(tc.experiment, tc.fault)
			if errs := validation.IsDNS1123Label(got); len(errs) > 0 {
				t.Errorf("%q: %v", got, errs)
			}
			if tc.want != "" && got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if got != Name(tc.experiment, tc.fault) {
				t.Error("not deterministic")
			}
		})
		seen[Name(tc.experiment, tc.fault)] = name
	}
	if len(seen) != len(tests) {
		t.Errorf("two names collide: %v", seen)
	}
	// Names cut to the same prefix still differ by their hash.
	if a, b := Name(long+"a", "cut"), Name(long+"b", "cut"); a == b {
		t.Errorf("%q and %q collide", a, b)
	}
}
