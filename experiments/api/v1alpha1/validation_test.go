//go:build sandbox

package v1alpha1_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"sigs.k8s.io/yaml"

	"faultline.dev/faultline/deploy"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/schema"
	"faultline.dev/faultline/sandbox"
	"faultline.dev/faultline/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

var experiments = k8sschema.GroupVersionResource{Group: "faultline.dev", Version: "v1alpha1", Resource: "experiments"}

func installCRDs(t *testing.T, env *sandboxtest.Env) {
	t.Helper()
	crds, err := deploy.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	sandboxtest.ApplyCRDs(t, env.RESTConfig, crds)
}

// valid is an experiment the API server accepts; each case breaks one field.
const valid = `
apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: probe, namespace: default}
spec:
  targets: {nodes: {names: [isolated-0]}}
  faults:
  - name: cut
    type: NetworkLoss
    duration: 90s
    networkLoss: {lossPercent: 100, towardAPIServer: true}
  objectives:
  - {name: short outage, expr: "nodes.maxNotReadySeconds <= 60"}
`

// validRollout is a rollout experiment the API server accepts.
const validRollout = `
apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: roll, namespace: default}
spec:
  targets: {deployment: demo-app}
  traffic: {url: "http://10.200.16.10/", rate: 200}
  faults:
  - name: sigterm
    type: Rollout
    duration: 60s
    rollout:
      trigger: {restart: true}
      at: {newReady: 1}
      action: {pods: Old, signal: SIGTERM}
  objectives:
  - {name: no 502, expr: "traffic.status['502'] == 0"}
`

// surgeRollout is validRollout's rollout parameters, which a Surge fault
// replaces.
const surgeRollout = "    rollout:\n      trigger: {restart: true}\n      at: {newReady: 1}\n      action: {pods: Old, signal: SIGTERM}\n"

// validDisk is a disk latency experiment the API server accepts.
const validDisk = `
apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: disk, namespace: default}
spec:
  targets: {nodes: {names: [real-0]}}
  faults:
  - name: slow-wal
    type: DiskLatency
    duration: 60s
    diskLatency:
      process: {name: etcd}
      delay: 100ms
      percent: 100
`

// validKill is a pod kill experiment the API server accepts.
const validKill = `
apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: kill, namespace: default}
spec:
  targets: {pods: {namespaces: [demo], labelSelectors: {app: demo-app}}, mode: fixed-percent, value: 50}
  faults:
  - name: kill
    type: PodKill
    duration: 45s
    podKill: {method: Delete, gracePeriodSeconds: 5, interval: 10s}
`

// validMemory is a memory pressure experiment the API server accepts.
const validMemory = `
apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: mem, namespace: default}
spec:
  targets: {pods: {namespaces: [demo], labelSelectors: {app: demo-app}}}
  faults:
  - name: squeeze
    type: MemoryPressure
    duration: 60s
    memoryPressure:
      size: 200Mi
      rampPerSecond: 64Mi
  objectives:
  - {name: no OOM kill, expr: "oom.kills == 0"}
`

func TestTheAPIServerRejectsBadExperimentsNamingTheField(t *testing.T) {
	env := sandboxtest.Get(t)
	installCRDs(t, env)
	dyn := dynamic.NewForConfigOrDie(env.RESTConfig)
	tests := map[string]struct {
		rollout   bool   // start from validRollout instead of valid
		disk      bool   // start from validDisk
		memory    bool   // start from validMemory
		kill      bool   // start from validKill
		from, to  string // a replacement in the valid experiment
		and, with string // a second one
		want      []string
	}{
		"a valid rollout experiment is accepted":                                 {rollout: true},
		"a valid disk latency experiment is accepted":                            {disk: true},
		"a valid memory pressure experiment is accepted":                         {memory: true},
		"a share of memory given as a percent is accepted":                       {memory: true, from: "size: 200Mi", to: "percent: 80"},
		"naming more nodes than safety.maxTargets is refused":                    {from: "targets: {nodes: {names: [isolated-0]}}", to: "targets: {nodes: {names: [isolated-0, real-0, kwok-0]}}\n  safety: {maxTargets: 2}", want: []string{"spec.targets.nodes.names", "names more nodes than safety.maxTargets allows"}},
		"naming as many nodes as safety.maxTargets is accepted":                  {from: "targets: {nodes: {names: [isolated-0]}}", to: "targets: {nodes: {names: [isolated-0, real-0]}}\n  safety: {maxTargets: 2}"},
		"a node memory fault is accepted":                                        {memory: true, from: "targets: {pods: {namespaces: [demo], labelSelectors: {app: demo-app}}}", to: "targets: {nodes: {names: [real-0]}}"},
		"a memory ramp of 0 is refused":                                          {memory: true, from: "rampPerSecond: 64Mi", to: "rampPerSecond: \"0\"", want: []string{"memoryPressure.rampPerSecond: must be more than 0"}},
		"a negative memory ramp is refused":                                      {memory: true, from: "rampPerSecond: 64Mi", to: "rampPerSecond: -1Mi", want: []string{"memoryPressure.rampPerSecond: must be more than 0"}},
		"a memory share above 100 is refused":                                    {memory: true, from: "size: 200Mi", to: "percent: 101", want: []string{"memoryPressure.percent", "less than or equal to 100"}},
		"a negative memory share is refused":                                     {memory: true, from: "size: 200Mi", to: "percent: -5", want: []string{"memoryPressure.percent", "greater than or equal to 1"}},
		"a memory size and a share together are refused":                         {memory: true, from: "size: 200Mi", to: "size: 200Mi\n      percent: 50", want: []string{"memoryPressure: set exactly one of size or percent"}},
		"a memory fault with neither size nor share is refused":                  {memory: true, from: "      size: 200Mi\n", to: "", want: []string{"memoryPressure: set exactly one of size or percent"}},
		"a zero memory size is refused":                                          {memory: true, from: "size: 200Mi", to: "size: \"0\"", want: []string{"memoryPressure.size: must be more than 0"}},
		"pushing a node past its limit is refused":                               {memory: true, from: "targets: {pods: {namespaces: [demo], labelSelectors: {app: demo-app}}}", to: "targets: {nodes: {names: [real-0]}}", and: "rampPerSecond: 64Mi", with: "rampPerSecond: 64Mi\n      pushPastLimit: true", want: []string{"memoryPressure.pushPastLimit: only for pod targets"}},
		"an unknown syscall is refused":                                          {disk: true, from: "delay: 100ms", to: "delay: 100ms\n      syscalls: [fsync, fsync2]", want: []string{"diskLatency.syscalls[1]", `Unsupported value: "fsync2"`, "fdatasync"}},
		"a share of calls above 100 is refused":                                  {disk: true, from: "percent: 100", to: "percent: 101", want: []string{"diskLatency.percent", "less than or equal to 100"}},
		"a negative share of calls is refused":                                   {disk: true, from: "percent: 100", to: "percent: -1", want: []string{"diskLatency.percent", "greater than or equal to 0"}},
		"a negative delay is refused":                                            {disk: true, from: "delay: 100ms", to: "delay: -100ms", want: []string{"diskLatency.delay: must be between 0s and 10s"}},
		"a jitter above the delay is refused":                                    {disk: true, from: "delay: 100ms", to: "delay: 100ms\n      jitter: 200ms", want: []string{"diskLatency.jitter: must be at most the delay"}},
		"a process given by both name and pid is refused":                        {disk: true, from: "process: {name: etcd}", to: "process: {name: etcd, pid: 42}", want: []string{"process: set exactly one of name or pid"}},
		"a node target without a process is refused":                             {disk: true, from: "      process: {name: etcd}\n", to: "", want: []string{"diskLatency.process: required for node targets"}},
		"prometheus with both an address and scrape is refused":                  {disk: true, from: "      percent: 100\n", to: "      percent: 100\n  prometheus: {address: \"http://prom:9090\", scrape: {apiServer: true}}\n", want: []string{"prometheus: set exactly one of address"}},
		"a prometheus address that is not a URL is refused":                      {disk: true, from: "      percent: 100\n", to: "      percent: 100\n  prometheus: {address: \"prom:9090\"}\n", want: []string{"prometheus.address: must be an http:// or https:// URL"}},
		"a traffic rate of 0 is refused":                                         {rollout: true, from: "rate: 200", to: "rate: 0", want: []string{"rate", "greater than or equal to 1"}},
		"a traffic rate above the maximum is refused":                            {rollout: true, from: "rate: 200", to: "rate: 20001", want: []string{"rate", "less than or equal to 20000"}},
		"a traffic URL that is not http or https is refused":                     {rollout: true, from: `url: "http://10.200.16.10/"`, to: `url: "ftp://10.200.16.10/"`, want: []string{"traffic.url: must be an http:// or https:// URL"}},
		"a rollout with both a trigger and a wait is refused":                    {rollout: true, from: "trigger: {restart: true}", to: "trigger: {restart: true}\n      wait: {timeout: 30s}", want: []string{"rollout: set exactly one of trigger"}},
		"a rollout with neither trigger nor wait is refused":                     {rollout: true, from: "      trigger: {restart: true}\n", to: "", want: []string{"rollout: set exactly one of trigger"}},
		"a rollout point set two ways is refused":                                {rollout: true, from: "at: {newReady: 1}", to: "at: {newReady: 1, progressPercent: 50}", want: []string{"at: set exactly one of newReady"}},
		"a rollout fault without a deployment target is refused":                 {rollout: true, from: "targets: {deployment: demo-app}", to: "targets: {nodes: {names: [real-0]}}", want: []string{"targets.deployment: required by Rollout and Surge faults"}},
		"a workload named besides the targets is accepted":                       {disk: true, from: "  faults:\n", to: "  workloads: [reconciler]\n  faults:\n"},
		"an empty workload name is refused":                                      {disk: true, from: "  faults:\n", to: "  workloads: [\"\"]\n  faults:\n", want: []string{"spec.workloads[0]"}},
		"a rollout and a surge in one experiment are refused":                    {rollout: true, from: "  objectives:\n", to: "  - name: burst\n    type: Surge\n    duration: 60s\n    surge: {replicas: 9}\n  objectives:\n", want: []string{"faults: a Rollout and a Surge fault cannot share"}},
		"a valid surge experiment is accepted":                                   {rollout: true, from: "type: Rollout", to: "type: Surge", and: surgeRollout, with: "    surge: {replicas: 3}\n"},
		"a surge of 0 replicas is refused":                                       {rollout: true, from: "type: Rollout", to: "type: Surge", and: surgeRollout, with: "    surge: {replicas: 0}\n", want: []string{"surge.replicas", "greater than or equal to 1"}},
		"a surge without its replicas is refused":                                {rollout: true, from: "type: Rollout", to: "type: Surge", and: surgeRollout, with: "", want: []string{"surge: required when type is Surge"}},
		"one node of those named is accepted":                                    {from: "targets: {nodes: {names: [isolated-0]}}", to: "targets: {nodes: {names: [isolated-0]}, mode: one, seed: 42}"},
		"a mode without its value is refused":                                    {from: "targets: {nodes: {names: [isolated-0]}}", to: "targets: {nodes: {names: [isolated-0]}, mode: fixed-percent}", want: []string{"targets.value: modes fixed, fixed-percent and random-max-percent need a value"}},
		"a value for mode one is refused":                                        {from: "targets: {nodes: {names: [isolated-0]}}", to: "targets: {nodes: {names: [isolated-0]}, mode: one, value: 2}", want: []string{"targets.value: only modes fixed, fixed-percent and random-max-percent take a value"}},
		"a percent over 100 is refused":                                          {from: "targets: {nodes: {names: [isolated-0]}}", to: "targets: {nodes: {names: [isolated-0]}, mode: random-max-percent, value: 101}", want: []string{"targets.value: a percent, from 1 to 100"}},
		"an unknown mode is refused":                                             {from: "targets: {nodes: {names: [isolated-0]}}", to: "targets: {nodes: {names: [isolated-0]}, mode: half}", want: []string{"targets.mode", "Unsupported value", "fixed-percent"}},
		"a negative seed is refused":                                             {from: "targets: {nodes: {names: [isolated-0]}}", to: "targets: {nodes: {names: [isolated-0]}, seed: -1}", want: []string{"targets.seed", "greater than or equal to 0"}},
		"a mode on a Deployment target is refused":                               {rollout: true, from: "targets: {deployment: demo-app}", to: "targets: {deployment: demo-app, mode: one}", want: []string{"targets.mode: a Deployment target is the whole Deployment"}},
		"a seed on a Deployment target is accepted":                              {rollout: true, from: "targets: {deployment: demo-app}", to: "targets: {deployment: demo-app, seed: 5}"},
		"a valid pod kill is accepted":                                           {kill: true},
		"a pod kill by signal is accepted":                                       {kill: true, from: "{method: Delete, gracePeriodSeconds: 5, interval: 10s}", to: "{method: Signal, signal: SIGTERM, container: app}"},
		"a pod kill without its parameters is refused":                           {kill: true, from: "    podKill: {method: Delete, gracePeriodSeconds: 5, interval: 10s}\n", to: "", want: []string{"podKill: required when type is PodKill"}},
		"a grace period with method Signal is refused":                           {kill: true, from: "method: Delete", to: "method: Signal", want: []string{"podKill.gracePeriodSeconds: only with method Delete"}},
		"a signal with method Delete is refused":                                 {kill: true, from: "interval: 10s", to: "interval: 10s, signal: SIGKILL", want: []string{"podKill.signal: only with method Signal"}},
		"an interval longer than the duration is refused":                        {kill: true, from: "interval: 10s", to: "interval: 50s", want: []string{"podKill.interval: must be at most the fault's duration"}},
		"an interval under a second is refused":                                  {kill: true, from: "interval: 10s", to: "interval: 500ms", want: []string{"podKill.interval: must be between 1s and 24h"}},
		"an unknown kill method is refused":                                      {kill: true, from: "method: Delete", to: "method: Evict", want: []string{"podKill.method", "Unsupported value"}},
		"a pod kill of nodes is refused":                                         {kill: true, from: "targets: {pods: {namespaces: [demo], labelSelectors: {app: demo-app}}, mode: fixed-percent, value: 50}", to: "targets: {nodes: {names: [real-0]}}", want: []string{"targets.pods: required by PodKill faults"}},
		"a pod kill every interval under chaos-mesh is refused":                  {kill: true, from: "  faults:\n", to: "  engine: chaos-mesh\n  faults:\n", want: []string{"podKill: under engine chaos-mesh, one round"}},
		"a SIGTERM pod kill under chaos-mesh is refused":                         {kill: true, from: "  faults:\n", to: "  engine: chaos-mesh\n  faults:\n", and: "{method: Delete, gracePeriodSeconds: 5, interval: 10s}", with: "{method: Signal, signal: SIGTERM, container: app}", want: []string{"podKill: under engine chaos-mesh, one round"}},
		"a one-round pod kill under chaos-mesh is accepted":                      {kill: true, from: "  faults:\n", to: "  engine: chaos-mesh\n  faults:\n", and: ", interval: 10s", with: ""},
		"a pod kill under chaos-mesh without its grace is refused":               {kill: true, from: "  faults:\n", to: "  engine: chaos-mesh\n  faults:\n", and: ", gracePeriodSeconds: 5, interval: 10s", with: "", want: []string{"method Delete with gracePeriodSeconds"}},
		"a pod kill by signal under chaos-mesh without its container is refused": {kill: true, from: "  faults:\n", to: "  engine: chaos-mesh\n  faults:\n", and: "{method: Delete, gracePeriodSeconds: 5, interval: 10s}", with: "{method: Signal}", want: []string{"method Signal with container"}},
		"more than 100 rounds are refused":                                       {kill: true, from: "duration: 45s", to: "duration: 24h", and: "interval: 10s", with: "interval: 1s", want: []string{"podKill.interval: at most 100 rounds"}},
		"a surge of nodes is refused":                                            {rollout: true, from: "targets: {deployment: demo-app}", to: "targets: {nodes: {names: [real-0]}}", and: "type: Rollout\n    duration: 60s\n" + surgeRollout, with: "type: Surge\n    duration: 60s\n    surge: {replicas: 3}\n", want: []string{"targets.deployment: required by Rollout and Surge faults"}},
		"an unknown signal is refused":                                           {rollout: true, from: "signal: SIGTERM", to: "signal: SIGHUP", want: []string{"signal", "Unsupported value"}},
		"a valid experiment is accepted":                                         {},
		"a loss share above 100 is refused":                                      {from: "lossPercent: 100", to: "lossPercent: 101", want: []string{"lossPercent", "less than or equal to 100"}},
		"a negative loss share is refused":                                       {from: "lossPercent: 100", to: "lossPercent: -5", want: []string{"lossPercent", "greater than or equal to 0"}},
		"a missing duration is refused":                                          {from: "    duration: 90s\n", to: "", want: []string{"duration", "Required value"}},
		"an unknown fault type is refused":                                       {from: "type: NetworkLoss", to: "type: Meteor", want: []string{"type", "Unsupported value", "NetworkLoss"}},
		"a duration over the maximum is refused":                                 {from: "duration: 90s", to: "duration: 25h", want: []string{"duration: must be more than 0s and at most 24h"}},
		"a zero duration is refused":                                             {from: "duration: 90s", to: "duration: 0s", want: []string{"duration: must be more than 0s"}},
		"a fault without its parameters is refused":                              {from: "    networkLoss: {lossPercent: 100, towardAPIServer: true}\n", to: "", want: []string{"networkLoss: required when type is NetworkLoss"}},
		"both pods and nodes as targets are refused":                             {from: "targets: {nodes: {names: [isolated-0]}}", to: "targets: {nodes: {names: [isolated-0]}, pods: {namespaces: [demo]}}", want: []string{"targets: set exactly one of pods, nodes or deployment"}},
		"a peer that is not a CIDR is refused":                                   {from: "towardAPIServer: true", to: "peers: [10.0.0.300/8]", want: []string{"peers: each must be a CIDR"}},
		"port 0 is refused":                                                      {from: "towardAPIServer: true", to: "ports: [0]", want: []string{"ports", "greater than or equal to 1"}},
		"an unknown direction is refused":                                        {from: "towardAPIServer: true", to: "direction: sideways", want: []string{"direction", "Unsupported value"}},
		"an objective without an expression is refused":                          {from: `expr: "nodes.maxNotReadySeconds <= 60"`, to: `expr: ""`, want: []string{"expr", "at least 1"}},
		"a node partition under engine chaos-mesh is accepted":                   {from: "  faults:\n", to: "  engine: chaos-mesh\n  faults:\n"},
		"a memory fault under engine chaos-mesh is accepted":                     {memory: true, from: "  faults:\n", to: "  engine: chaos-mesh\n  faults:\n"},
		"an unknown engine is refused":                                           {from: "  faults:\n", to: "  engine: litmus\n  faults:\n", want: []string{"engine", "Unsupported value"}},
		"ports under engine chaos-mesh are refused":                              {from: "  faults:\n", to: "  engine: chaos-mesh\n  faults:\n", and: "towardAPIServer: true", with: "towardAPIServer: true, ports: [6443]", want: []string{"networkLoss.ports: not under engine chaos-mesh"}},
		"a SIGTERM rollout under engine chaos-mesh is refused":                   {rollout: true, from: "  faults:\n", to: "  engine: chaos-mesh\n  faults:\n", want: []string{"rollout.action: under engine chaos-mesh"}},
		"a surge under engine chaos-mesh is refused":                             {rollout: true, from: "type: Rollout", to: "type: Surge", and: surgeRollout, with: "    surge: {replicas: 3}\n  engine: chaos-mesh\n", want: []string{"surge: not under engine chaos-mesh"}},
		"a node disk latency under engine chaos-mesh is refused":                 {disk: true, from: "  faults:\n", to: "  engine: chaos-mesh\n  faults:\n", want: []string{"targets.nodes: DiskLatency and MemoryPressure need targets.pods", "diskLatency.process: not under engine chaos-mesh", "diskLatency.pathPrefix: required under engine chaos-mesh"}},
		"no faults at all are refused":                                           {from: "  faults:\n  - name: cut\n    type: NetworkLoss\n    duration: 90s\n    networkLoss: {lossPercent: 100, towardAPIServer: true}\n", to: "  faults: []\n", want: []string{"faults", "at least 1"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			doc := valid
			if tc.rollout {
				doc = validRollout
			}
			if tc.disk {
				doc = validDisk
			}
			if tc.memory {
				doc = validMemory
			}
			if tc.kill {
				doc = validKill
			}
			if tc.from != "" {
				if !strings.Contains(doc, tc.from) {
					t.Fatalf("test bug: %q not in the valid experiment", tc.from)
				}
				doc = strings.Replace(doc, tc.from, tc.to, 1)
			}
			if tc.and != "" {
				if !strings.Contains(doc, tc.and) {
					t.Fatalf("test bug: %q not in the valid experiment", tc.and)
				}
				doc = strings.Replace(doc, tc.and, tc.with, 1)
			}
			objs, err := deploy.Decode([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			// faultline validate (the CRD's rules by the server's code,
			// without a cluster) agrees.
			var local v1alpha1.Experiment
			if err := yaml.UnmarshalStrict([]byte(doc), &local); err != nil {
				t.Fatal(err)
			}
			errs, err := schema.Check(&local)
			if err != nil {
				t.Fatal(err)
			}
			if (len(errs) == 0) != (len(tc.want) == 0) {
				t.Errorf("local validation disagrees with the API server: %v", errs)
			} else if len(errs) > 0 && !strings.Contains(errs.ToAggregate().Error(), strings.Split(tc.want[0], ":")[0]) {
				t.Errorf("local validation %v does not name %q", errs, tc.want[0])
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = dyn.Resource(experiments).Namespace("default").Create(ctx, objs[0], metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted, want a rejection")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("rejection lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestKubectlExplainTeachesEveryField(t *testing.T) {
	env := sandboxtest.Get(t)
	installCRDs(t, env)
	kubectl := filepath.Join(sandbox.ToolsDir(), "kubectl")
	for field, want := range map[string]string{
		"experiment.spec.faults.duration":                "recovers it at an absolute deadline",
		"experiment.spec.faults.networkLoss.lossPercent": "share of matching packets dropped",
		"experiment.spec.objectives.expr":                "CEL expression",
		"experiment.spec.faults.rollout.action.method":   "main process",
		"experiment.spec.traffic.rate":                   "requests per second",
		"experiment.status.phase":                        "where the experiment is in its life",
		"faultassignment.spec.faults.deadline":           "by its own clock",
		"experiment.spec.faults.surge":                   "preempting lower-priority pods",
		"experiment.spec.engine":                         "NetworkChaos",
	} {
		var out []byte
		var err error
		// The API server publishes a new CRD's schema a moment after it is
		// established.
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			out, err = exec.Command(kubectl, "--kubeconfig", env.State.Kubeconfig, "explain", field).CombinedOutput()
			if err == nil && strings.Contains(string(out), want) {
				break
			}
		}
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("kubectl explain %s: %v\n%s\nwant it to contain %q", field, err, out, want)
		}
	}
}
