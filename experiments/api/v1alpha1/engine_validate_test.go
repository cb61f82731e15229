package v1alpha1_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/schema"
)

// Experiments under engine chaos-mesh that validate; each case breaks one
// field. The CRD's CEL rules refuse it (checked here offline with the API
// server's code), and so does ValidateChaosMesh, the engine's own guard
// when it translates a fault, with the same messages.
const (
	chaosMeshNetwork = `
apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: net, namespace: default}
spec:
  engine: chaos-mesh
  targets: {pods: {namespaces: [demo], labelSelectors: {app: demo-app}}}
  faults:
  - name: lossy
    type: NetworkLoss
    duration: 60s
    networkLoss: {lossPercent: 30, direction: egress}
`
	chaosMeshDisk = `
apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: disk, namespace: default}
spec:
  engine: chaos-mesh
  targets: {pods: {namespaces: [kube-system], labelSelectors: {component: etcd}}}
  faults:
  - name: slow-wal
    type: DiskLatency
    duration: 60s
    diskLatency:
      pathPrefix: /var/lib/etcd
      delay: 100ms
      percent: 50
`
	chaosMeshMemory = `
apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: mem, namespace: default}
spec:
  engine: chaos-mesh
  targets: {pods: {namespaces: [demo], labelSelectors: {app: demo-app}}}
  faults:
  - name: squeeze
    type: MemoryPressure
    duration: 60s
    memoryPressure:
      size: 200Mi
      rampPerSecond: 64Mi
`
	chaosMeshRollout = `
apiVersion: faultline.dev/v1alpha1
kind: Experiment
metadata: {name: roll, namespace: default}
spec:
  engine: chaos-mesh
  targets: {deployment: demo-app}
  faults:
  - name: kill
    type: Rollout
    duration: 60s
    rollout:
      trigger: {restart: true}
      at: {newReady: 1}
      action: {pods: Old, method: Delete}
`
)

func TestEngineChaosMeshRefusesWhatChaosMeshCannotExpressNamingTheField(t *testing.T) {
	tests := map[string]struct {
		doc       string
		from, to  string   // a replacement in the document
		and, with string   // a second one
		want      []string // the path and the message; none: valid
	}{
		"a pod network loss of 30% of sent packets is valid":         {doc: chaosMeshNetwork},
		"a node partition from the API server is valid":              {doc: chaosMeshNetwork, from: "targets: {pods: {namespaces: [demo], labelSelectors: {app: demo-app}}}", to: "targets: {nodes: {names: [real-0]}}", and: "{lossPercent: 30, direction: egress}", with: "{lossPercent: 100, towardAPIServer: true}"},
		"a full loss toward peers both ways is valid":                {doc: chaosMeshNetwork, from: "{lossPercent: 30, direction: egress}", to: "{lossPercent: 100, peers: [10.0.0.0/8], direction: both}"},
		"delay and corruption without peers are valid":               {doc: chaosMeshNetwork, from: "direction: egress}", to: "direction: egress, delay: 50ms, corruptPercent: 5}"},
		"an unknown engine is refused":                               {doc: chaosMeshNetwork, from: "engine: chaos-mesh", to: "engine: litmus", want: []string{"spec.engine", `Unsupported value: "litmus"`}},
		"engine faultline keeps what chaos-mesh refuses":             {doc: chaosMeshNetwork, from: "engine: chaos-mesh", to: "engine: faultline", and: "{lossPercent: 30, direction: egress}", with: "{lossPercent: 30, ports: [443], protocol: tcp}"},
		"no engine is faultline":                                     {doc: chaosMeshNetwork, from: "  engine: chaos-mesh\n", to: "", and: "{lossPercent: 30, direction: egress}", with: "{lossPercent: 30, ports: [443]}"},
		"a surge is refused":                                         {doc: chaosMeshRollout, from: "    rollout:\n      trigger: {restart: true}\n      at: {newReady: 1}\n      action: {pods: Old, method: Delete}\n", to: "    surge: {replicas: 3}\n", and: "type: Rollout", with: "type: Surge", want: []string{"spec.faults[0].type", "surge: not under engine chaos-mesh"}},
		"a loss on some ports is refused":                            {doc: chaosMeshNetwork, from: "direction: egress}", to: "direction: egress, ports: [443]}", want: []string{"spec.faults[0].networkLoss.ports", "networkLoss.ports: not under engine chaos-mesh"}},
		"a loss of one protocol is refused":                          {doc: chaosMeshNetwork, from: "direction: egress}", to: "direction: egress, protocol: udp}", want: []string{"spec.faults[0].networkLoss.protocol", "networkLoss.protocol: not under engine chaos-mesh"}},
		"a partial loss both ways is refused":                        {doc: chaosMeshNetwork, from: "direction: egress", to: "direction: both", want: []string{"spec.faults[0].networkLoss.direction", "networkLoss.direction: must be egress"}},
		"a partial loss of received packets is refused":              {doc: chaosMeshNetwork, from: "direction: egress", to: "direction: ingress", want: []string{"spec.faults[0].networkLoss.direction", "networkLoss.direction: must be egress"}},
		"a partial loss with the default direction is refused":       {doc: chaosMeshNetwork, from: ", direction: egress", to: "", want: []string{"spec.faults[0].networkLoss.direction", "networkLoss.direction: must be egress"}},
		"a full loss toward everything both ways is refused":         {doc: chaosMeshNetwork, from: "{lossPercent: 30, direction: egress}", to: "{lossPercent: 100}", want: []string{"spec.faults[0].networkLoss.direction", "networkLoss.direction: must be egress"}},
		"a partial loss toward peers both ways is refused":           {doc: chaosMeshNetwork, from: "{lossPercent: 30, direction: egress}", to: "{lossPercent: 99, peers: [10.0.0.0/8]}", want: []string{"spec.faults[0].networkLoss.direction", "networkLoss.direction: must be egress"}},
		"a delay with peers is refused":                              {doc: chaosMeshNetwork, from: "direction: egress}", to: "direction: egress, peers: [10.0.0.0/8], delay: 50ms}", want: []string{"spec.faults[0].networkLoss.delay", "networkLoss.delay: delay and corruptPercent not with peers"}},
		"a corruption toward the API server is refused":              {doc: chaosMeshNetwork, from: "direction: egress}", to: "direction: egress, towardAPIServer: true, corruptPercent: 5}", want: []string{"spec.faults[0].networkLoss.delay", "networkLoss.delay: delay and corruptPercent not with peers"}},
		"a disk latency of 100ms on half the calls is valid":         {doc: chaosMeshDisk},
		"fsync, fdatasync, write and pwrite64 are valid":             {doc: chaosMeshDisk, from: "percent: 50", to: "percent: 50\n      syscalls: [fsync, fdatasync, write, pwrite64]"},
		"a disk latency on nodes is refused":                         {doc: chaosMeshDisk, from: "targets: {pods: {namespaces: [kube-system], labelSelectors: {component: etcd}}}", to: "targets: {nodes: {names: [real-0]}}", and: "pathPrefix: /var/lib/etcd", with: "pathPrefix: /var/lib/etcd\n      process: {name: etcd}", want: []string{"spec.targets.nodes", "targets.nodes: DiskLatency and MemoryPressure need targets.pods"}},
		"a disk latency of a process is refused":                     {doc: chaosMeshDisk, from: "pathPrefix: /var/lib/etcd", to: "pathPrefix: /var/lib/etcd\n      process: {name: etcd}", want: []string{"spec.faults[0].diskLatency.process", "diskLatency.process: not under engine chaos-mesh"}},
		"a disk latency without a path is refused":                   {doc: chaosMeshDisk, from: "      pathPrefix: /var/lib/etcd\n", to: "", want: []string{"spec.faults[0].diskLatency.pathPrefix", "diskLatency.pathPrefix: required under engine chaos-mesh"}},
		"a relative path is refused":                                 {doc: chaosMeshDisk, from: "pathPrefix: /var/lib/etcd", to: "pathPrefix: var/lib/etcd", want: []string{"spec.faults[0].diskLatency.pathPrefix", "diskLatency.pathPrefix: required under engine chaos-mesh"}},
		"a jitter is refused":                                        {doc: chaosMeshDisk, from: "delay: 100ms", to: "delay: 100ms\n      jitter: 10ms", want: []string{"spec.faults[0].diskLatency.jitter", "diskLatency.jitter: not under engine chaos-mesh"}},
		"sync_file_range is refused":                                 {doc: chaosMeshDisk, from: "percent: 50", to: "percent: 50\n      syscalls: [fsync, sync_file_range]", want: []string{"spec.faults[0].diskLatency.syscalls[1]", "diskLatency.syscalls: under engine chaos-mesh only fsync, fdatasync, write and pwrite64"}},
		"a memory pressure of 200Mi is valid":                        {doc: chaosMeshMemory},
		"a memory pressure on nodes is refused":                      {doc: chaosMeshMemory, from: "targets: {pods: {namespaces: [demo], labelSelectors: {app: demo-app}}}", to: "targets: {nodes: {names: [real-0]}}", want: []string{"spec.targets.nodes", "targets.nodes: DiskLatency and MemoryPressure need targets.pods"}},
		"a share of the memory limit is refused":                     {doc: chaosMeshMemory, from: "size: 200Mi", to: "percent: 80", want: []string{"spec.faults[0].memoryPressure.percent", "memoryPressure.percent: not under engine chaos-mesh"}},
		"a hold is refused":                                          {doc: chaosMeshMemory, from: "rampPerSecond: 64Mi", to: "rampPerSecond: 64Mi\n      hold: 20s", want: []string{"spec.faults[0].memoryPressure.hold", "memoryPressure.hold: not under engine chaos-mesh"}},
		"pushing past the limit is refused":                          {doc: chaosMeshMemory, from: "rampPerSecond: 64Mi", to: "rampPerSecond: 64Mi\n      pushPastLimit: true", want: []string{"spec.faults[0].memoryPressure.pushPastLimit", "memoryPressure.pushPastLimit: not under engine chaos-mesh"}},
		"a rollout that deletes pods is valid":                       {doc: chaosMeshRollout},
		"a rollout that sends SIGKILL is valid":                      {doc: chaosMeshRollout, from: "method: Delete", to: "signal: SIGKILL"},
		"a rollout that sends SIGTERM is refused":                    {doc: chaosMeshRollout, from: "method: Delete", to: "method: Signal, signal: SIGTERM", want: []string{"spec.faults[0].rollout.action", "rollout.action: under engine chaos-mesh, method Delete"}},
		"a rollout with the default action (SIGTERM) is refused":     {doc: chaosMeshRollout, from: "      action: {pods: Old, method: Delete}\n", to: "", want: []string{"spec.faults[0].rollout.action", "rollout.action: under engine chaos-mesh, method Delete"}},
		"the second fault is named when only it cannot be expressed": {doc: chaosMeshNetwork, from: "direction: egress}\n", to: "direction: egress}\n  - {name: more, type: NetworkLoss, duration: 60s, networkLoss: {lossPercent: 30, direction: egress, ports: [80]}}\n", want: []string{"spec.faults[1].networkLoss.ports", "networkLoss.ports"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			doc := tc.doc
			for _, r := range [][2]string{{tc.from, tc.to}, {tc.and, tc.with}} {
				if r[0] == "" {
					continue
				}
				if !strings.Contains(doc, r[0]) {
					t.Fatalf("test bug: %q not in the document", r[0])
				}
				doc = strings.Replace(doc, r[0], r[1], 1)
			}
			var e v1alpha1.Experiment
			if err := yaml.UnmarshalStrict([]byte(doc), &e); err != nil {
				t.Fatal(err)
			}
			crd, err := schema.Check(&e)
			if err != nil {
				t.Fatal(err)
			}
			guard := e.Spec.ValidateEngine()
			for who, errs := range map[string]field.ErrorList{"the CRD's rules": crd, "ValidateEngine": guard} {
				if len(tc.want) == 0 {
					if len(errs) > 0 {
						t.Errorf("%s refuse it: %v", who, errs)
					}
					continue
				}
				if len(errs) == 0 && (who == "the CRD's rules" || e.Spec.Engine == v1alpha1.EngineChaosMesh) {
					t.Errorf("%s take it, want a refusal", who)
				}
				if len(errs) == 0 {
					continue // only the schema knows the engines
				}
				for _, w := range tc.want {
					// A CEL rule over the engine and a fault names spec
					// only; ValidateEngine names the fault's field.
					if who == "the CRD's rules" && strings.HasPrefix(w, "spec.faults[") {
						continue
					}
					if !strings.Contains(errs.ToAggregate().Error(), w) {
						t.Errorf("%s' errors lack %q:\n%v", who, w, errs)
					}
				}
			}
		})
	}
}
