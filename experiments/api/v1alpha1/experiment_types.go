package v1alpha1

import (
	chaosmeshv1alpha1 "github.com/chaos-mesh/chaos-mesh/api/v1alpha1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ExperimentSpec is what to break, for how long, and what must still hold.
// +kubebuilder:validation:XValidation:rule="self.faults.all(f, (f.type != 'Rollout' && f.type != 'Surge') || has(self.targets.deployment))",message="targets.deployment: required by Rollout and Surge faults",fieldPath=".targets"
// +kubebuilder:validation:XValidation:rule="self.faults.all(f, f.type != 'PodKill' || has(self.targets.pods))",message="targets.pods: required by PodKill faults (they kill pods; target the pods of a Deployment by their labels)",fieldPath=".targets"
// +kubebuilder:validation:XValidation:rule="!has(self.engine) || self.engine != 'chaos-mesh' || self.faults.all(f, !has(f.podKill) || (!has(f.podKill.interval) && (has(f.podKill.method) && f.podKill.method == 'Signal' ? has(f.podKill.container) && (!has(f.podKill.signal) || f.podKill.signal == 'SIGKILL') : has(f.podKill.gracePeriodSeconds))))",message="podKill: under engine chaos-mesh, one round (no interval: Chaos Mesh kills once per object), and method Delete with gracePeriodSeconds (a pod-kill; Chaos Mesh reads no pod's own) or method Signal with container and signal SIGKILL (a container-kill)",fieldPath=".faults"
// +kubebuilder:validation:XValidation:rule="!has(self.targets.deployment) || self.faults.all(f, f.type == 'Rollout' || f.type == 'Surge')",message="targets.deployment: only for Rollout and Surge faults; the others need targets.pods or targets.nodes",fieldPath=".targets.deployment"
// +kubebuilder:validation:XValidation:rule="!has(self.targets.nodes) || self.faults.all(f, f.type != 'DiskLatency' || has(f.diskLatency.process))",message="diskLatency.process: required for node targets (the process to slow on each node)",fieldPath=".faults"
// +kubebuilder:validation:XValidation:rule="!has(self.targets.nodes) || self.faults.all(f, f.type != 'MemoryPressure' || !has(f.memoryPressure.pushPastLimit) || !f.memoryPressure.pushPastLimit)",message="memoryPressure.pushPastLimit: only for pod targets; on a node the stressor stops at its size so that the kubelet evicts, not the kernel",fieldPath=".faults"
// +kubebuilder:validation:XValidation:rule="!(self.faults.exists(f, f.type == 'Rollout') && self.faults.exists(f, f.type == 'Surge'))",message="faults: a Rollout and a Surge fault cannot share one experiment's Deployment (the surge would move the rollout's point)",fieldPath=".faults"
// +kubebuilder:validation:XValidation:rule="!has(self.engine) || self.engine != 'chaos-mesh' || self.faults.all(f, f.type != 'Surge')",message="surge: not under engine chaos-mesh (Chaos Mesh has no fault that scales a Deployment up); use engine: faultline",fieldPath=".faults"
// +kubebuilder:validation:XValidation:rule="!has(self.engine) || self.engine != 'chaos-mesh' || self.faults.all(f, !has(f.networkLoss) || !has(f.networkLoss.ports) || size(f.networkLoss.ports) == 0)",message="networkLoss.ports: not under engine chaos-mesh (a NetworkChaos cannot match ports); drop ports or use engine: faultline",fieldPath=".faults"
// +kubebuilder:validation:XValidation:rule="!has(self.engine) || self.engine != 'chaos-mesh' || self.faults.all(f, !has(f.networkLoss) || !has(f.networkLoss.protocol))",message="networkLoss.protocol: not under engine chaos-mesh (a NetworkChaos cannot match a protocol); drop protocol or use engine: faultline",fieldPath=".faults"
// +kubebuilder:validation:XValidation:rule="!has(self.engine) || self.engine != 'chaos-mesh' || self.faults.all(f, !has(f.networkLoss) || (has(f.networkLoss.direction) && f.networkLoss.direction == 'egress') || (f.networkLoss.lossPercent == 100 && ((has(f.networkLoss.peers) && size(f.networkLoss.peers) > 0) || (has(f.networkLoss.towardAPIServer) && f.networkLoss.towardAPIServer))))",message="networkLoss.direction: must be egress under engine chaos-mesh, unless lossPercent is 100 with peers or towardAPIServer (Chaos Mesh's loss acts on the packets the pods send; only its partition, a loss of 100% toward given peers, cuts ingress too)",fieldPath=".faults"
// +kubebuilder:validation:XValidation:rule="!has(self.engine) || self.engine != 'chaos-mesh' || self.faults.all(f, !has(f.networkLoss) || ((!has(f.networkLoss.delay)) && (!has(f.networkLoss.corruptPercent) || f.networkLoss.corruptPercent == 0)) || ((!has(f.networkLoss.peers) || size(f.networkLoss.peers) == 0) && (!has(f.networkLoss.towardAPIServer) || !f.networkLoss.towardAPIServer)))",message="networkLoss.delay: delay and corruptPercent not with peers or towardAPIServer under engine chaos-mesh (one NetworkChaos would restrict them to the peers, where faultline applies them to every sent packet); drop them, or the peers",fieldPath=".faults"
// +kubebuilder:validation:XValidation:rule="!has(self.engine) || self.engine != 'chaos-mesh' || !has(self.targets.nodes) || self.faults.all(f, f.type != 'DiskLatency' && f.type != 'MemoryPressure')",message="targets.nodes: DiskLatency and MemoryPressure need targets.pods under engine chaos-mesh (Chaos Mesh slows and fills containers, not a node's process or the node as a whole)",fieldPath=".targets.nodes"
// +kubebuilder:validation:XValidation:rule="!has(self.engine) || self.engine != 'chaos-mesh' || self.faults.all(f, !has(f.diskLatency) || !has(f.diskLatency.process))",message="diskLatency.process: not under engine chaos-mesh (an IOChaos slows a volume of the pods' containers, not a process); target pods and give pathPrefix",fieldPath=".faults"
// +kubebuilder:validation:XValidation:rule="!has(self.engine) || self.engine != 'chaos-mesh' || self.faults.all(f, !has(f.diskLatency) || (has(f.diskLatency.pathPrefix) && f.diskLatency.pathPrefix.startsWith('/')))",message="diskLatency.pathPrefix: required under engine chaos-mesh, an absolute directory inside a volume of the container such as /var/lib/etcd (an IOChaos slows the files of one volume)",fieldPath=".faults"
// +kubebuilder:validation:XValidation:rule="!has(self.engine) || self.engine != 'chaos-mesh' || self.faults.all(f, !has(f.diskLatency) || !has(f.diskLatency.jitter))",message="diskLatency.jitter: not under engine chaos-mesh (an IOChaos delays every call by exactly the delay); drop jitter",fieldPath=".faults"
// +kubebuilder:validation:XValidation:rule="!has(self.engine) || self.engine != 'chaos-mesh' || self.faults.all(f, !has(f.diskLatency) || !has(f.diskLatency.syscalls) || f.diskLatency.syscalls.all(s, s != 'sync_file_range'))",message="diskLatency.syscalls: under engine chaos-mesh only fsync, fdatasync, write and pwrite64 (Chaos Mesh sees a volume's file operations, and sync_file_range is not one)",fieldPath=".faults"
// +kubebuilder:validation:XValidation:rule="!has(self.engine) || self.engine != 'chaos-mesh' || self.faults.all(f, !has(f.diskLatency) || !has(f.diskLatency.percent) || f.diskLatency.percent > 0)",message="diskLatency.percent: must be more than 0 under engine chaos-mesh (Chaos Mesh reads 0 as 100)",fieldPath=".faults"
// +kubebuilder:validation:XValidation:rule="!has(self.engine) || self.engine != 'chaos-mesh' || self.faults.all(f, !has(f.memoryPressure) || !has(f.memoryPressure.percent))",message="memoryPressure.percent: not under engine chaos-mesh (one StressChaos holds one size for all its pods); give size",fieldPath=".faults"
// +kubebuilder:validation:XValidation:rule="!has(self.engine) || self.engine != 'chaos-mesh' || self.faults.all(f, !has(f.memoryPressure) || !has(f.memoryPressure.hold))",message="memoryPressure.hold: not under engine chaos-mesh (Chaos Mesh holds the memory until the fault's duration ends); shorten duration instead",fieldPath=".faults"
// +kubebuilder:validation:XValidation:rule="!has(self.engine) || self.engine != 'chaos-mesh' || self.faults.all(f, !has(f.memoryPressure) || !has(f.memoryPressure.pushPastLimit) || !f.memoryPressure.pushPastLimit)",message="memoryPressure.pushPastLimit: not under engine chaos-mesh (Chaos Mesh's stressor stops at its size and cannot force one OOM kill); drop it or use engine: faultline",fieldPath=".faults"
// +kubebuilder:validation:XValidation:rule="!has(self.engine) || self.engine != 'chaos-mesh' || self.faults.all(f, !has(f.rollout) || (has(f.rollout.action) && ((has(f.rollout.action.method) && f.rollout.action.method == 'Delete') || (has(f.rollout.action.signal) && f.rollout.action.signal == 'SIGKILL'))))",message="rollout.action: under engine chaos-mesh, method Delete (a pod-kill: the kubelet sends SIGTERM) or signal SIGKILL (a container-kill); Chaos Mesh cannot send SIGTERM to a container",fieldPath=".faults"
// +kubebuilder:validation:XValidation:rule="!has(self.safety) || !has(self.safety.maxTargets) || !has(self.targets.nodes) || !has(self.targets.nodes.names) || size(self.targets.nodes.names) <= self.safety.maxTargets",message="targets.nodes.names: names more nodes than safety.maxTargets allows; name fewer, or raise safety.maxTargets (nodes chosen by a selector are capped when the experiment starts)",fieldPath=".targets.nodes.names"
type ExperimentSpec struct {
	// Engine injects the faults. faultline (the default) writes one
	// FaultAssignment per node, and faultline's agent on each node injects
	// and recovers at an absolute deadline by its own clock, even when cut
	// off. chaos-mesh creates Chaos Mesh objects instead (Chaos Mesh must be
	// installed), each carrying the fault's duration so that Chaos Mesh
	// ends it even without faultline: NetworkLoss becomes a NetworkChaos,
	// DiskLatency an IOChaos, MemoryPressure a StressChaos, and a Rollout's
	// action a PodChaos (faultline still starts or waits for the rollout).
	// Targets, safety rules, traffic, analyzers, objectives, verdict and
	// reports are the same under both engines.
	//
	// Under chaos-mesh: Surge has no counterpart; node targets of a
	// NetworkLoss become the pods on those nodes (the node's own traffic,
	// the kubelet's, is untouched, so a node does not go NotReady);
	// networkLoss matches no ports nor protocol, drops only sent packets
	// (direction egress) unless it is a loss of 100% toward peers or the
	// API server (a partition), and carries delay and corruption only
	// without peers; DiskLatency and MemoryPressure need pod targets;
	// DiskLatency slows a volume (pathPrefix, required) rather than a
	// process, without jitter or sync_file_range; MemoryPressure takes a
	// size and allocates it at once (no ramp, no hold, no pushPastLimit);
	// a Rollout's action is method Delete or signal SIGKILL.
	// +optional
	// +kubebuilder:default=faultline
	Engine Engine `json:"engine,omitempty"`

	// Targets selects the pods, the nodes or the Deployment that the faults
	// act on.
	// +required
	Targets Targets `json:"targets"`

	// Faults to inject, each with its own start offset and duration.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Faults []Fault `json:"faults"`

	// Objectives are the SLOs the experiment is judged against: CEL
	// expressions over the measurements, such as
	// `nodes.maxNotReadySeconds <= 60`. An objective marked abort is also
	// checked live, and a breach recovers every fault at once.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Objectives []Objective `json:"objectives,omitempty"`

	// Traffic drives constant-rate HTTP requests through the experiment:
	// a baseline window before the first fault, the faults, and a recovery
	// window after the last. Objectives read what users felt as traffic.*.
	// +optional
	Traffic *Traffic `json:"traffic,omitempty"`

	// Prometheus measures the cluster through PromQL, or by reading its
	// components' /metrics directly where no Prometheus runs: etcd's WAL
	// fsync and backend commit p99, leader changes and the API server's
	// write latency, in a baseline window, the faults and a recovery
	// window, plus queries of your own. Objectives read prometheus.*.
	// +optional
	Prometheus *Prometheus `json:"prometheus,omitempty"`

	// Workloads names Deployments of the experiment's namespace whose
	// availability is measured (workloads.byWorkload["NS/NAME"]), besides
	// those with pods on the targets: the workload that feels a fault it
	// does not host, such as an operator whose leader election writes
	// through a slowed etcd.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	Workloads []string `json:"workloads,omitempty"`

	// Safety bounds the blast radius.
	// +optional
	Safety *Safety `json:"safety,omitempty"`

	// DryRun resolves and reports the targets without injecting anything.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
}

// Targets selects pods, nodes or one Deployment, and which of the
// matching pods or nodes the faults act on.
// +kubebuilder:validation:XValidation:rule="(has(self.pods) ? 1 : 0) + (has(self.nodes) ? 1 : 0) + (has(self.deployment) ? 1 : 0) == 1",message="targets: set exactly one of pods, nodes or deployment"
// +kubebuilder:validation:XValidation:rule="!has(self.mode) || !(self.mode in ['fixed', 'fixed-percent', 'random-max-percent']) || has(self.value)",message="targets.value: modes fixed, fixed-percent and random-max-percent need a value (a count for fixed, a percent for the others)",fieldPath=".value"
// +kubebuilder:validation:XValidation:rule="!has(self.value) || (has(self.mode) && self.mode in ['fixed', 'fixed-percent', 'random-max-percent'])",message="targets.value: only modes fixed, fixed-percent and random-max-percent take a value; one and all take none",fieldPath=".value"
// +kubebuilder:validation:XValidation:rule="!has(self.mode) || !(self.mode in ['fixed-percent', 'random-max-percent']) || !has(self.value) || self.value <= 100",message="targets.value: a percent, from 1 to 100, for modes fixed-percent and random-max-percent",fieldPath=".value"
// +kubebuilder:validation:XValidation:rule="!has(self.deployment) || !has(self.mode)",message="targets.mode: a Deployment target is the whole Deployment; its Rollout action's count says how many of its pods, chosen at random (by seed, when given)",fieldPath=".mode"
type Targets struct {
	// Pods, in Chaos Mesh's selector shape. Their namespaces must carry the
	// label faultline.dev/chaos=enabled.
	// +optional
	Pods *chaosmeshv1alpha1.PodSelectorSpec `json:"pods,omitempty"`

	// Nodes, by name or by label selector.
	// +optional
	Nodes *NodeTargets `json:"nodes,omitempty"`

	// Deployment, by name in the experiment's namespace, for Rollout and
	// Surge faults. The namespace must carry faultline.dev/chaos=enabled.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Deployment string `json:"deployment,omitempty"`

	// Mode chooses which of the matching pods or nodes the faults act on,
	// at random, as Chaos Mesh's selector modes do: one; fixed, value of
	// them; fixed-percent, value percent of them (rounded down, at least
	// one); random-max-percent, a random share from one target up to value
	// percent; all, the default. spec.safety caps the choice.
	// +optional
	Mode TargetMode `json:"mode,omitempty"`

	// Value is the mode's figure: a count of targets for fixed, a percent
	// (1 to 100) for fixed-percent and random-max-percent.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Value *int32 `json:"value,omitempty"`

	// Seed replays a choice: the same seed over the same matching targets
	// (or, for a Deployment, the same Ready pods at a Rollout's point)
	// chooses the same ones. Without it a seed is drawn, and
	// status.targetSeed records it.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=9007199254740991
	Seed *int64 `json:"seed,omitempty"`
}

// TargetMode is how many of the matching pods or nodes the faults act on,
// chosen at random.
// +kubebuilder:validation:Enum=one;fixed;fixed-percent;random-max-percent;all
type TargetMode string

const (
	// TargetModeOne acts on one target.
	TargetModeOne TargetMode = "one"
	// TargetModeFixed acts on value targets.
	TargetModeFixed TargetMode = "fixed"
	// TargetModeFixedPercent acts on value percent of the targets.
	TargetModeFixedPercent TargetMode = "fixed-percent"
	// TargetModeRandomMaxPercent acts on a random share of the targets,
	// up to value percent.
	TargetModeRandomMaxPercent TargetMode = "random-max-percent"
	// TargetModeAll acts on every target.
	TargetModeAll TargetMode = "all"
)

// MaxSeed is the highest seed: 2^53-1, which every JSON reader, a
// browser's included, keeps exact.
const MaxSeed = 1<<53 - 1

// NodeTargets selects nodes by name or by labels.
// +kubebuilder:validation:XValidation:rule="has(self.names) != has(self.selector)",message="targets.nodes: set exactly one of names or selector"
type NodeTargets struct {
	// Names of the nodes.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1000
	Names []string `json:"names,omitempty"`

	// Selector matches nodes by their labels.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// Engine names what injects an experiment's faults.
// +kubebuilder:validation:Enum=faultline;chaos-mesh
type Engine string

const (
	// EngineFaultline injects through faultline's own agents.
	EngineFaultline Engine = "faultline"
	// EngineChaosMesh injects through Chaos Mesh's objects.
	EngineChaosMesh Engine = "chaos-mesh"
)

// Engines are the engines, the default first.
var Engines = []Engine{EngineFaultline, EngineChaosMesh}

// FaultType names a fault family.
// +kubebuilder:validation:Enum=NetworkLoss;Rollout;DiskLatency;MemoryPressure;Surge;PodKill
type FaultType string

const (
	// FaultNetworkLoss drops a share of a node's or a pod's packets.
	FaultNetworkLoss FaultType = "NetworkLoss"
	// FaultRollout signals or deletes pods at a point of a Deployment's
	// rolling update.
	FaultRollout FaultType = "Rollout"
	// FaultDiskLatency delays a process's fsync and fdatasync (etcd's WAL)
	// at syscall level.
	FaultDiskLatency FaultType = "DiskLatency"
	// FaultMemoryPressure allocates and touches memory inside a container's
	// memory cgroup, or node-wide, with a ramp and a hold.
	FaultMemoryPressure FaultType = "MemoryPressure"
	// FaultSurge scales a Deployment up for the fault's duration: a burst
	// of pods that, with a high PriorityClass, preempts others.
	FaultSurge FaultType = "Surge"
	// FaultPodKill kills target pods, through the API or as a crash of a
	// container, once or every interval.
	FaultPodKill FaultType = "PodKill"
)

// FaultTypes are the fault families, in the order the docs give them.
var FaultTypes = []FaultType{FaultNetworkLoss, FaultRollout, FaultDiskLatency, FaultMemoryPressure, FaultSurge, FaultPodKill}

// MaxFaultDuration is the longest a single fault may last.
const MaxFaultDuration = "24h"

// Fault is one fault of an experiment.
// +kubebuilder:validation:XValidation:rule="self.type != 'NetworkLoss' || has(self.networkLoss)",message="networkLoss: required when type is NetworkLoss",fieldPath=".networkLoss"
// +kubebuilder:validation:XValidation:rule="self.type != 'Rollout' || has(self.rollout)",message="rollout: required when type is Rollout",fieldPath=".rollout"
// +kubebuilder:validation:XValidation:rule="self.type == 'NetworkLoss' || !has(self.networkLoss)",message="networkLoss: only for type NetworkLoss",fieldPath=".networkLoss"
// +kubebuilder:validation:XValidation:rule="self.type == 'Rollout' || !has(self.rollout)",message="rollout: only for type Rollout",fieldPath=".rollout"
// +kubebuilder:validation:XValidation:rule="self.type != 'DiskLatency' || has(self.diskLatency)",message="diskLatency: required when type is DiskLatency",fieldPath=".diskLatency"
// +kubebuilder:validation:XValidation:rule="self.type == 'DiskLatency' || !has(self.diskLatency)",message="diskLatency: only for type DiskLatency",fieldPath=".diskLatency"
// +kubebuilder:validation:XValidation:rule="self.type != 'MemoryPressure' || has(self.memoryPressure)",message="memoryPressure: required when type is MemoryPressure",fieldPath=".memoryPressure"
// +kubebuilder:validation:XValidation:rule="self.type == 'MemoryPressure' || !has(self.memoryPressure)",message="memoryPressure: only for type MemoryPressure",fieldPath=".memoryPressure"
// +kubebuilder:validation:XValidation:rule="self.type != 'Surge' || has(self.surge)",message="surge: required when type is Surge",fieldPath=".surge"
// +kubebuilder:validation:XValidation:rule="self.type == 'Surge' || !has(self.surge)",message="surge: only for type Surge",fieldPath=".surge"
// +kubebuilder:validation:XValidation:rule="self.type != 'PodKill' || has(self.podKill)",message="podKill: required when type is PodKill",fieldPath=".podKill"
// +kubebuilder:validation:XValidation:rule="self.type == 'PodKill' || !has(self.podKill)",message="podKill: only for type PodKill",fieldPath=".podKill"
// +kubebuilder:validation:XValidation:rule="!has(self.podKill) || !has(self.podKill.interval) || duration(self.podKill.interval) <= duration(self.duration)",message="podKill.interval: must be at most the fault's duration (the first kill is at its start)",fieldPath=".podKill.interval"
// +kubebuilder:validation:XValidation:rule="!has(self.podKill) || !has(self.podKill.interval) || duration(self.duration).getSeconds() <= duration(self.podKill.interval).getSeconds() * 100",message="podKill.interval: at most 100 rounds in a fault (duration / interval); lengthen the interval or shorten the duration",fieldPath=".podKill.interval"
// +kubebuilder:validation:XValidation:rule="duration(self.duration) > duration('0s') && duration(self.duration) <= duration('24h')",message="duration: must be more than 0s and at most 24h",fieldPath=".duration"
// +kubebuilder:validation:XValidation:rule="!has(self.startAfter) || (duration(self.startAfter) >= duration('0s') && duration(self.startAfter) <= duration('24h'))",message="startAfter: must be between 0s and 24h",fieldPath=".startAfter"
type Fault struct {
	// Name identifies the fault within the experiment.
	// +required
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$`
	Name string `json:"name"`

	// Type is the fault family.
	// +required
	Type FaultType `json:"type"`

	// StartAfter delays the fault from the start of the experiment.
	// +optional
	StartAfter *metav1.Duration `json:"startAfter,omitempty"`

	// Duration is how long the fault lasts, at most 24h. Every target's
	// agent recovers it at an absolute deadline by its own clock, even when
	// it cannot reach the API server.
	// +required
	Duration metav1.Duration `json:"duration"`

	// NetworkLoss parameters, for type NetworkLoss.
	// +optional
	NetworkLoss *NetworkLoss `json:"networkLoss,omitempty"`

	// Rollout parameters, for type Rollout. The fault's duration bounds the
	// whole rollout: its start, the action, and the wait for it to end.
	// +optional
	Rollout *Rollout `json:"rollout,omitempty"`

	// DiskLatency parameters, for type DiskLatency.
	// +optional
	DiskLatency *DiskLatency `json:"diskLatency,omitempty"`

	// MemoryPressure parameters, for type MemoryPressure.
	// +optional
	MemoryPressure *MemoryPressure `json:"memoryPressure,omitempty"`

	// Surge parameters, for type Surge: the target Deployment is scaled to
	// surge.replicas for the fault's duration, then back to the count it
	// had. With a high PriorityClass on full nodes, the scheduler makes
	// room by preempting lower-priority pods (evictions.reasons.Preempted);
	// what the others kept is workloads.byWorkload. The count to return to
	// is kept in the Deployment's faultline.dev/surge annotation.
	// +optional
	Surge *Surge `json:"surge,omitempty"`

	// PodKill parameters, for type PodKill: the target pods are killed at
	// the fault's start, and again every interval when one is given, each
	// time chosen anew (targets.mode) among the pods that match then.
	// +optional
	PodKill *PodKill `json:"podKill,omitempty"`
}

// PodKill kills pods, or one container of each.
// +kubebuilder:validation:XValidation:rule="self.method == 'Delete' || !has(self.gracePeriodSeconds)",message="podKill.gracePeriodSeconds: only with method Delete (method Signal sends its signal at once, with no grace)",fieldPath=".gracePeriodSeconds"
// +kubebuilder:validation:XValidation:rule="self.method == 'Signal' || !has(self.signal)",message="podKill.signal: only with method Signal (method Delete leaves the signals to the kubelet)",fieldPath=".signal"
// +kubebuilder:validation:XValidation:rule="self.method == 'Signal' || !has(self.container)",message="podKill.container: only with method Signal (method Delete deletes the whole pod)",fieldPath=".container"
// +kubebuilder:validation:XValidation:rule="!has(self.interval) || (duration(self.interval) >= duration('1s') && duration(self.interval) <= duration('24h'))",message="podKill.interval: must be between 1s and 24h",fieldPath=".interval"
type PodKill struct {
	// Method: Delete deletes each pod through the API with the grace
	// period (the kubelet runs preStop, then SIGTERM, and its controller
	// makes a new pod); Signal sends the signal to the container's main
	// process through the node's agent, as a crash (the pod stays, the
	// container restarts).
	// +optional
	// +kubebuilder:default=Delete
	// +kubebuilder:validation:Enum=Delete;Signal
	Method string `json:"method,omitempty"`
	// GracePeriodSeconds for method Delete; the pod's own when unset.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	GracePeriodSeconds *int64 `json:"gracePeriodSeconds,omitempty"`
	// Signal for method Signal: SIGKILL (the default), a crash; SIGTERM,
	// as a stop from outside.
	// +optional
	// +kubebuilder:validation:Enum=SIGTERM;SIGKILL
	Signal string `json:"signal,omitempty"`
	// Container whose main process method Signal signals; the first when
	// empty.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Container string `json:"container,omitempty"`
	// Interval kills again every interval for the fault's duration, as
	// kube-monkey and chaoskube do: each round chooses among the pods that
	// match then (those a controller made anew included).
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
}

// EffectiveSignal is the signal method Signal sends.
func (k *PodKill) EffectiveSignal() string {
	if k.Signal == "" {
		return "SIGKILL"
	}
	return k.Signal
}

// Surge scales the target Deployment up to replicas for the fault's
// duration, then back to the replicas it had: a department's burst of
// pods. When its pods carry a high PriorityClass and the nodes are full,
// the scheduler makes room by preempting lower-priority pods, which the
// evictions analyzer counts (evictions.reasons.Preempted) and the
// workloads analyzer turns into what each Deployment kept serving. A
// ResourceQuota scoped to the class caps the burst. The replicas the
// Deployment had are kept in its faultline.dev/surge annotation, so that
// a restarted controller, or the deletion of the experiment, still scales
// it back.
type Surge struct {
	// Replicas the Deployment is scaled to for the fault, 1 to 1000.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Replicas int32 `json:"replicas"`
}

// MemoryPressure makes memory really resident where the kernel and the
// kubelet count it. For pod targets, a stressor joins the container's
// memory cgroup (in a child cgroup of its own), so it counts against the
// container's limit: up to the size, or past the limit until the kernel
// OOM-kills in the container. For node targets, the stressor runs in a
// cgroup of its own under the node's pod cgroup, where the kubelet counts
// it against the node's allocatable memory like any pod's, so memory
// available falls until the kubelet evicts pods in its documented order.
// The stressor ramps up at rampPerSecond, then holds the size until hold
// ends, or until the fault's duration ends.
// +kubebuilder:validation:XValidation:rule="has(self.size) != has(self.percent)",message="memoryPressure: set exactly one of size or percent"
// +kubebuilder:validation:XValidation:rule="quantity(string(self.rampPerSecond)).isGreaterThan(quantity('0'))",message="memoryPressure.rampPerSecond: must be more than 0 (bytes a second, such as 64Mi)",fieldPath=".rampPerSecond"
// +kubebuilder:validation:XValidation:rule="!has(self.size) || quantity(string(self.size)).isGreaterThan(quantity('0'))",message="memoryPressure.size: must be more than 0, such as 200Mi",fieldPath=".size"
// +kubebuilder:validation:XValidation:rule="!has(self.hold) || duration(self.hold) > duration('0s')",message="memoryPressure.hold: must be more than 0s",fieldPath=".hold"
type MemoryPressure struct {
	// Size the stressor makes resident, such as 200Mi.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	Size *resource.Quantity `json:"size,omitempty"`

	// Percent of the container's memory limit (pod targets) or of the
	// node's allocatable memory (node targets), 1 to 100.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Percent int32 `json:"percent,omitempty"`

	// RampPerSecond is how fast the stressor grows, such as 64Mi: bytes a
	// second, more than 0.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	RampPerSecond resource.Quantity `json:"rampPerSecond"`

	// Hold is how long the size is held once reached; the fault then ends
	// early. By default it is held until the fault's duration ends.
	// +optional
	Hold *metav1.Duration `json:"hold,omitempty"`

	// Container of pod targets whose memory cgroup the stressor joins; the
	// first when empty.
	// +optional
	Container string `json:"container,omitempty"`

	// PushPastLimit keeps allocating past the container's limit until the
	// kernel OOM-kills in the container (pod targets only): the stressor
	// then releases its memory and exits, so that one OOM kill is forced.
	// +optional
	PushPastLimit bool `json:"pushPastLimit,omitempty"`

	// Force allows a size above a node's allocatable memory (node targets).
	// +optional
	Force bool `json:"force,omitempty"`
}

// DiskLatency slows a process's disk syscalls where the process makes
// them: the agent traces it (ptrace) and holds the chosen calls at their
// entry, with no kernel module, no FUSE mount and no restart. Pointed at
// etcd, it is the slow disk that stalls the WAL.
// +kubebuilder:validation:XValidation:rule="!has(self.jitter) || duration(self.jitter) <= duration(self.delay)",message="diskLatency.jitter: must be at most the delay",fieldPath=".jitter"
// +kubebuilder:validation:XValidation:rule="duration(self.delay) >= duration('0s') && duration(self.delay) <= duration('10s')",message="diskLatency.delay: must be between 0s and 10s",fieldPath=".delay"
type DiskLatency struct {
	// Process on each target node, for node targets (etcd run outside
	// Kubernetes, or the sandbox's). Pod targets use the main process of
	// the pod's container instead (a static etcd pod).
	// +optional
	Process *ProcessSelector `json:"process,omitempty"`

	// Container of pod targets whose main process is traced; the first
	// when empty.
	// +optional
	Container string `json:"container,omitempty"`

	// Syscalls delayed: fsync and fdatasync when empty.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=5
	// +kubebuilder:validation:items:Enum=fsync;fdatasync;write;pwrite64;sync_file_range
	Syscalls []string `json:"syscalls,omitempty"`

	// Delay of each delayed call, at most 10s.
	// +required
	Delay metav1.Duration `json:"delay"`

	// Jitter adds up to this much at random to each delay.
	// +optional
	Jitter *metav1.Duration `json:"jitter,omitempty"`

	// Percent of the matching calls delayed, 0 to 100.
	// +optional
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Percent *int32 `json:"percent,omitempty"`

	// PathPrefix restricts the delay to calls on files under this
	// directory, such as etcd's WAL directory.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	PathPrefix string `json:"pathPrefix,omitempty"`
}

// ProcessSelector finds one process on a node.
// +kubebuilder:validation:XValidation:rule="has(self.name) != has(self.pid)",message="process: set exactly one of name or pid"
type ProcessSelector struct {
	// Name of the process (its comm, such as etcd); it must match exactly
	// one process, with commandLineContains if several share the name.
	// +optional
	// +kubebuilder:validation:MaxLength=15
	Name string `json:"name,omitempty"`
	// CommandLineContains narrows processes by name to those whose command
	// line contains this text (say, the data directory).
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	CommandLineContains string `json:"commandLineContains,omitempty"`
	// PID of the process.
	// +optional
	// +kubebuilder:validation:Minimum=1
	PID int32 `json:"pid,omitempty"`
}

// Rollout starts a rolling update of the target Deployment, or waits for
// one, and at a chosen point of it signals or deletes chosen pods: the
// SIGTERM that reaches a pod before the endpoints and proxies stop sending
// it traffic.
// +kubebuilder:validation:XValidation:rule="has(self.trigger) != has(self.wait)",message="rollout: set exactly one of trigger (faultline starts the rollout) or wait (for one to start)"
type Rollout struct {
	// Trigger starts the rollout.
	// +optional
	Trigger *RolloutTrigger `json:"trigger,omitempty"`

	// Wait waits for a rollout that something else starts (a CI deploy).
	// +optional
	Wait *RolloutWait `json:"wait,omitempty"`

	// At is the point of the rollout where the action happens.
	// +required
	At RolloutPoint `json:"at"`

	// Action is what happens to which pods at that point: by default
	// SIGTERM to one old pod's main container.
	// +optional
	// +kubebuilder:default={}
	Action *RolloutAction `json:"action,omitempty"`
}

// RolloutTrigger changes the pod template so that the Deployment rolls.
// +kubebuilder:validation:XValidation:rule="(has(self.restart) && self.restart ? 1 : 0) + (has(self.image) ? 1 : 0) + (has(self.env) ? 1 : 0) == 1",message="trigger: set exactly one of restart, image or env"
type RolloutTrigger struct {
	// Restart stamps the pod template, as `kubectl rollout restart` does.
	// +optional
	Restart bool `json:"restart,omitempty"`
	// Image sets a container's image.
	// +optional
	Image *ContainerImage `json:"image,omitempty"`
	// Env sets an environment variable of a container.
	// +optional
	Env *ContainerEnv `json:"env,omitempty"`
}

// ContainerImage is a new image for one container.
type ContainerImage struct {
	// Container name; the first container when empty.
	// +optional
	Container string `json:"container,omitempty"`
	// Image reference.
	// +required
	// +kubebuilder:validation:MinLength=1
	Image string `json:"image"`
}

// ContainerEnv is a new value of one environment variable.
type ContainerEnv struct {
	// Container name; the first container when empty.
	// +optional
	Container string `json:"container,omitempty"`
	// Name of the variable.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Value to set.
	// +optional
	Value string `json:"value,omitempty"`
}

// RolloutWait waits for a rollout to start.
type RolloutWait struct {
	// Timeout for the rollout to start; the fault's duration when unset.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// RolloutPoint is a moment of the rollout.
// +kubebuilder:validation:XValidation:rule="(has(self.newReady) ? 1 : 0) + (has(self.progressPercent) ? 1 : 0) + (has(self.after) ? 1 : 0) == 1",message="at: set exactly one of newReady, progressPercent or after"
// +kubebuilder:validation:XValidation:rule="!has(self.after) || (duration(self.after) >= duration('0s') && duration(self.after) <= duration('24h'))",message="at.after: must be between 0s and 24h",fieldPath=".after"
type RolloutPoint struct {
	// NewReady is reached when this many pods of the new ReplicaSet are
	// Ready.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	NewReady *int32 `json:"newReady,omitempty"`
	// ProgressPercent is reached when this share of the desired replicas
	// is updated and Ready.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	ProgressPercent *int32 `json:"progressPercent,omitempty"`
	// After is a time offset from the start of the rollout.
	// +optional
	After *metav1.Duration `json:"after,omitempty"`
}

// RolloutAction is what happens at the point.
// +kubebuilder:validation:XValidation:rule="self.method != 'Signal' || !has(self.gracePeriodSeconds)",message="gracePeriodSeconds: only for method Delete",fieldPath=".gracePeriodSeconds"
type RolloutAction struct {
	// Pods chooses among the old ReplicaSets' pods or the new one's.
	// +optional
	// +kubebuilder:default=Old
	// +kubebuilder:validation:Enum=Old;New
	Pods string `json:"pods,omitempty"`
	// Count of pods acted on, at most the Ready pods of that choice.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Count int32 `json:"count,omitempty"`
	// Method: Signal sends the signal to the container's main process
	// through the node's agent (the pod stays, the container restarts, as
	// after a crash); Delete deletes the pods through the API with the
	// grace period (the kubelet then sends SIGTERM itself).
	// +optional
	// +kubebuilder:default=Signal
	// +kubebuilder:validation:Enum=Signal;Delete
	Method string `json:"method,omitempty"`
	// Signal for method Signal.
	// +optional
	// +kubebuilder:default=SIGTERM
	// +kubebuilder:validation:Enum=SIGTERM;SIGKILL
	Signal string `json:"signal,omitempty"`
	// Container whose main process is signalled; the first when empty.
	// +optional
	Container string `json:"container,omitempty"`
	// GracePeriodSeconds for method Delete; the pod's own when unset.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	GracePeriodSeconds *int64 `json:"gracePeriodSeconds,omitempty"`
}

// Prometheus is where metrics come from, the windows they are judged in,
// and queries of your own.
// +kubebuilder:validation:XValidation:rule="has(self.address) != has(self.scrape)",message="prometheus: set exactly one of address (a Prometheus server) or scrape (read /metrics directly)"
// +kubebuilder:validation:XValidation:rule="!has(self.address) || self.address.startsWith('http://') || self.address.startsWith('https://')",message="prometheus.address: must be an http:// or https:// URL",fieldPath=".address"
// +kubebuilder:validation:XValidation:rule="!has(self.baseline) || (duration(self.baseline) >= duration('10s') && duration(self.baseline) <= duration('1h'))",message="prometheus.baseline: must be between 10s and 1h",fieldPath=".baseline"
// +kubebuilder:validation:XValidation:rule="!has(self.recovery) || (duration(self.recovery) >= duration('10s') && duration(self.recovery) <= duration('1h'))",message="prometheus.recovery: must be between 10s and 1h",fieldPath=".recovery"
type Prometheus struct {
	// Address of a Prometheus server, such as
	// http://prometheus.monitoring:9090.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Address string `json:"address,omitempty"`
	// Scrape reads the components' /metrics directly and takes quantiles
	// of the histograms' differences, where no Prometheus runs.
	// +optional
	Scrape *Scrape `json:"scrape,omitempty"`
	// Baseline is measured before the first fault starts; 30s when unset.
	// The faults start that much later.
	// +optional
	Baseline *metav1.Duration `json:"baseline,omitempty"`
	// Recovery is measured after the last fault ends; 30s when unset.
	// +optional
	Recovery *metav1.Duration `json:"recovery,omitempty"`
	// Queries of your own (with address), each measured at its interval
	// and judged by its conditions, as Argo Rollouts' analysis.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Queries []PrometheusQuery `json:"queries,omitempty"`
}

// Scrape names the /metrics endpoints read directly.
type Scrape struct {
	// Etcd metrics URLs, such as http://127.0.0.1:2381/metrics.
	// +optional
	// +kubebuilder:validation:MaxItems=7
	// +kubebuilder:validation:items:MaxLength=2048
	Etcd []string `json:"etcd,omitempty"`
	// APIServer reads the API server's own /metrics with the controller's
	// credentials.
	// +optional
	APIServer bool `json:"apiServer,omitempty"`
}

// PrometheusQuery is a PromQL measurement with its conditions, as Argo
// Rollouts' Prometheus metric: result is a number (scalar) or a list of
// numbers (vector) in the CEL conditions.
type PrometheusQuery struct {
	// Name of the measurement: prometheus.queries.NAME.
	// +required
	// +kubebuilder:validation:Pattern=`^[a-zA-Z][a-zA-Z0-9_]{0,62}$`
	Name string `json:"name"`
	// Query in PromQL.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Query string `json:"query"`
	// SuccessCondition in CEL over result, such as result[0] < 0.1.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	SuccessCondition string `json:"successCondition,omitempty"`
	// FailureCondition in CEL over result; a true one is a failure.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	FailureCondition string `json:"failureCondition,omitempty"`
	// FailureLimit is how many failed measurements are tolerated.
	// +optional
	// +kubebuilder:validation:Minimum=0
	FailureLimit int32 `json:"failureLimit,omitempty"`
	// Interval between measurements; 10s when unset.
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
}

// MaxTrafficRate is the highest traffic rate, in requests per second.
const MaxTrafficRate = 20000

// Traffic is constant-rate, open-loop HTTP load: requests leave on
// schedule whether or not earlier ones have answered, so a stalled server
// cannot hide its failures (no coordinated omission).
// +kubebuilder:validation:XValidation:rule="self.url.startsWith('http://') || self.url.startsWith('https://')",message="traffic.url: must be an http:// or https:// URL",fieldPath=".url"
// +kubebuilder:validation:XValidation:rule="!has(self.timeout) || (duration(self.timeout) > duration('0s') && duration(self.timeout) <= duration('60s'))",message="traffic.timeout: must be more than 0s and at most 60s",fieldPath=".timeout"
// +kubebuilder:validation:XValidation:rule="!has(self.baseline) || (duration(self.baseline) >= duration('0s') && duration(self.baseline) <= duration('1h'))",message="traffic.baseline: must be between 0s and 1h",fieldPath=".baseline"
// +kubebuilder:validation:XValidation:rule="!has(self.recovery) || (duration(self.recovery) >= duration('0s') && duration(self.recovery) <= duration('1h'))",message="traffic.recovery: must be between 0s and 1h",fieldPath=".recovery"
type Traffic struct {
	// URL requested, http or https: an ingress address, a ClusterIP, or a
	// Service as NAME.NAMESPACE.svc, which the controller resolves to its
	// ClusterIP through the API (so it works without cluster DNS).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	URL string `json:"url"`
	// Method of the requests.
	// +optional
	// +kubebuilder:default=GET
	// +kubebuilder:validation:Enum=GET;HEAD;POST;PUT;PATCH;DELETE;OPTIONS
	Method string `json:"method,omitempty"`
	// Headers sent with every request.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	Headers map[string]string `json:"headers,omitempty"`
	// Rate in requests per second, 1 to 20000.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=20000
	Rate int32 `json:"rate"`
	// Timeout of each request; 2s when unset.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Baseline is measured before the first fault starts; 10s when unset.
	// The faults start that much later.
	// +optional
	Baseline *metav1.Duration `json:"baseline,omitempty"`
	// Recovery is measured after the last fault ends; 10s when unset.
	// +optional
	Recovery *metav1.Duration `json:"recovery,omitempty"`
	// KeepAlive reuses connections between requests, as one client with a
	// pool does. Off (the default), each request opens its own connection,
	// as many independent users do, so that kube-proxy or an ingress places
	// every request anew and a dying endpoint cannot hide behind a few
	// pinned connections.
	// +optional
	KeepAlive bool `json:"keepAlive,omitempty"`
	// NetworkNamespace the requests leave from, as a path such as
	// /var/run/netns/NAME; the controller's own network when unset.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	NetworkNamespace string `json:"networkNamespace,omitempty"`
}

// NetworkLoss drops a share of packets in the target's network namespace.
type NetworkLoss struct {
	// LossPercent is the share of matching packets dropped, 0 to 100.
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	LossPercent int32 `json:"lossPercent"`

	// Direction of the lost packets: egress, ingress or both (default).
	// +optional
	// +kubebuilder:default=both
	// +kubebuilder:validation:Enum=egress;ingress;both
	Direction string `json:"direction,omitempty"`

	// Peers restricts the loss to these remote CIDRs.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:XValidation:rule="isCIDR(self)",message="peers: each must be a CIDR such as 10.0.0.0/8"
	// +kubebuilder:validation:items:MaxLength=43
	Peers []string `json:"peers,omitempty"`

	// TowardAPIServer adds the API server's addresses and port to the
	// peers: the classic partition of a node from its control plane.
	// +optional
	TowardAPIServer bool `json:"towardAPIServer,omitempty"`

	// Ports restricts the loss to these remote ports.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65535
	Ports []int32 `json:"ports,omitempty"`

	// Protocol restricts the loss: tcp, udp or icmp; any when empty.
	// +optional
	// +kubebuilder:validation:Enum=tcp;udp;icmp
	Protocol string `json:"protocol,omitempty"`

	// Delay adds latency to every packet the target sends, through tc
	// netem; it needs a kernel with sch_netem, and the fault fails with a
	// clear error where there is none. Peers, ports and protocol do not
	// restrict it.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('10s')",message="delay: must be between 0s and 10s"
	Delay *metav1.Duration `json:"delay,omitempty"`

	// CorruptPercent corrupts that share of sent packets, through tc netem.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	CorruptPercent int32 `json:"corruptPercent,omitempty"`

	// Device carrying delay and corruption; eth0 by default.
	// +optional
	// +kubebuilder:validation:MaxLength=15
	Device string `json:"device,omitempty"`
}

// Objective is one SLO.
type Objective struct {
	// Name identifies the objective in the verdict and reports.
	// +required
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9]([-a-zA-Z0-9_. ]{0,62}[a-zA-Z0-9])?$`
	Name string `json:"name"`

	// Expr is a CEL expression over the measurements that must be true,
	// such as `evictions.count == 0`.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Expr string `json:"expr"`

	// Abort checks the objective live during the faults; a breach aborts
	// the experiment and recovers every fault at once.
	// +optional
	Abort bool `json:"abort,omitempty"`
}

// Safety bounds what an experiment may touch.
type Safety struct {
	// MaxTargets caps the number of targets.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxTargets *int32 `json:"maxTargets,omitempty"`

	// MaxTargetPercent caps the targets as a share of all candidates.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxTargetPercent *int32 `json:"maxTargetPercent,omitempty"`

	// AllowSystemNamespaces lets kube-system and faultline's own namespace
	// be targets, which is refused otherwise.
	// +optional
	AllowSystemNamespaces bool `json:"allowSystemNamespaces,omitempty"`
}

// Labels and annotations faultline reads and writes.
const (
	// LabelChaosEnabled must be "enabled" on a namespace before its pods can
	// be targets.
	LabelChaosEnabled = "faultline.dev/chaos"
	// LabelNode marks a FaultAssignment, and a node's agent identity,
	// with its node, for people and selectors.
	LabelNode = "faultline.dev/node"
	// LabelExperiment marks a report or a Chaos Mesh object with its
	// experiment's UID.
	LabelExperiment = "faultline.dev/experiment-uid"
	// LabelExperimentName marks a Chaos Mesh object with its experiment's
	// name, for people; the UID is what the controller selects by.
	LabelExperimentName = "faultline.dev/experiment"
	// LabelFault marks a Chaos Mesh object with its fault's name.
	LabelFault = "faultline.dev/fault"
	// AnnotationAbort on an Experiment asks for an abort.
	AnnotationAbort = "faultline.dev/abort"
	// Finalizer holds an Experiment until its faults are recovered.
	Finalizer = "faultline.dev/recover-faults"
)

// IsFinal reports whether the phase is an end.
func (p Phase) IsFinal() bool {
	return p == PhasePassed || p == PhaseFailed || p == PhaseAborted || p == PhaseError
}

// Phase of an experiment.
// +kubebuilder:validation:Enum=Pending;Injecting;Running;Recovering;Analyzing;Passed;Failed;Aborted;Error
type Phase string

const (
	PhasePending    Phase = "Pending"
	PhaseInjecting  Phase = "Injecting"
	PhaseRunning    Phase = "Running"
	PhaseRecovering Phase = "Recovering"
	PhaseAnalyzing  Phase = "Analyzing"
	PhasePassed     Phase = "Passed"
	PhaseFailed     Phase = "Failed"
	PhaseAborted    Phase = "Aborted"
	PhaseError      Phase = "Error"
)

// Verdict of an experiment or an objective, as Argo Rollouts' analysis.
// +kubebuilder:validation:Enum=Passed;Failed;Inconclusive;Error
type Verdict string

const (
	VerdictPassed       Verdict = "Passed"
	VerdictFailed       Verdict = "Failed"
	VerdictInconclusive Verdict = "Inconclusive"
	VerdictError        Verdict = "Error"
)

// ExperimentStatus is what happened.
type ExperimentStatus struct {
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase is where the experiment is in its life.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// Conditions: Ready (False, with the step as reason, while the
	// controller cannot move the experiment along, and once it ended in
	// Error), Acknowledged (every agent acknowledged its faults, or every
	// Chaos Mesh object exists), Recovered (every fault is reported
	// recovered) and Aborted.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// StartTime is when the first fault was scheduled.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// Timeline of what happened and when, oldest first.
	// +optional
	Timeline []TimelineEntry `json:"timeline,omitempty"`

	// Records of each fault on each target.
	// +optional
	Records []InjectionRecord `json:"records,omitempty"`

	// Targets the faults were planned on, as NAMESPACE/POD or node names.
	// +optional
	Targets []string `json:"targets,omitempty"`

	// TargetSeed is the seed the targets (or a Rollout's pods) were chosen
	// with, when they are some of those that matched: give it as
	// spec.targets.seed to choose the same ones again from the same
	// candidates.
	// +optional
	TargetSeed *int64 `json:"targetSeed,omitempty"`

	// Workloads whose pods ran on the targets when the faults began, as
	// NAMESPACE/DEPLOYMENT; recovery waits until they are Available.
	// +optional
	Workloads []string `json:"workloads,omitempty"`

	// NodeSpans are the NotReady periods of the target nodes.
	// +optional
	NodeSpans []NodeSpan `json:"nodeSpans,omitempty"`

	// Taints added to and removed from the target nodes, with their times.
	// +optional
	Taints []TaintChange `json:"taints,omitempty"`

	// Evictions seen during the experiment (the first 500).
	// +optional
	Evictions []EvictionRecord `json:"evictions,omitempty"`

	// TrafficURL is the URL the traffic went to, a Service name resolved.
	// +optional
	TrafficURL string `json:"trafficURL,omitempty"`

	// Traffic is what the traffic met over time: one bucket per second, or
	// per several seconds on runs longer than 15 minutes.
	// +optional
	// +kubebuilder:validation:MaxItems=900
	Traffic []TrafficBucket `json:"traffic,omitempty"`

	// Rollouts observed or started by Rollout faults.
	// +optional
	Rollouts []RolloutRecord `json:"rollouts,omitempty"`

	// PodKills are the rounds of the PodKill faults.
	// +optional
	PodKills []PodKillRecord `json:"podKills,omitempty"`

	// Measurements by name, as the objectives see them.
	// +optional
	Measurements map[string]string `json:"measurements,omitempty"`

	// Objectives and how each was judged.
	// +optional
	Objectives []ObjectiveResult `json:"objectives,omitempty"`

	// Verdict of the experiment.
	// +optional
	Verdict Verdict `json:"verdict,omitempty"`

	// Message explains the verdict or the error.
	// +optional
	Message string `json:"message,omitempty"`
}

// TrafficBucket is the traffic of one period, by scheduled send time.
type TrafficBucket struct {
	// Start of the period.
	Start metav1.Time `json:"start"`
	// Seconds the period covers.
	Seconds int32 `json:"seconds"`
	// Sent requests.
	Sent int64 `json:"sent"`
	// Status counts answers by HTTP status code.
	// +optional
	Status map[string]int64 `json:"status,omitempty"`
	// Errors counts failed requests by class: refused, reset, timeout,
	// overload, other, http502, http503, http504, http5xx.
	// +optional
	Errors map[string]int64 `json:"errors,omitempty"`
	// LatencyP99 of the answered requests, as a duration such as 12ms;
	// the highest second's over a period of several.
	// +optional
	LatencyP99 string `json:"latencyP99,omitempty"`
}

// PodKillRecord is where one PodKill fault is in its rounds.
type PodKillRecord struct {
	// Fault's name in the spec.
	Fault string `json:"fault"`
	// Round is the last round begun, from 1; each kill's record carries
	// its round.
	Round int32 `json:"round"`
	// Chosen are the pods (NAMESPACE/NAME) of that round, written before
	// they are killed, so that a round retried after a lost status write
	// kills the same pods.
	// +optional
	Chosen []string `json:"chosen,omitempty"`
	// ChosenUIDs are the chosen pods' UIDs, in the same order: a pod made
	// anew under the same name (a StatefulSet's) is not the one chosen.
	// +optional
	ChosenUIDs []types.UID `json:"chosenUIDs,omitempty"`
	// Done says the round's kills were made.
	// +optional
	Done bool `json:"done,omitempty"`
	// Skipped counts rounds that came while the controller could not act
	// (it was down): the next round kills once, not once per missed round.
	// +optional
	Skipped int32 `json:"skipped,omitempty"`
}

// RolloutRecord is what one Rollout fault saw of its Deployment's
// rollout.
type RolloutRecord struct {
	// Fault's name in the spec.
	Fault string `json:"fault"`
	// Deployment as NAMESPACE/NAME.
	Deployment string `json:"deployment"`
	// TriggeredAt is when faultline changed the pod template.
	// +optional
	TriggeredAt *metav1.Time `json:"triggeredAt,omitempty"`
	// Generation of the Deployment that the rollout rolls to; unset while
	// the fault waits for someone else's rollout.
	// +optional
	Generation int64 `json:"generation,omitempty"`
	// WaitingAfterGeneration is, for rollout.wait, the Deployment's
	// generation when the fault started: a rollout is one that moves past
	// it.
	// +optional
	WaitingAfterGeneration int64 `json:"waitingAfterGeneration,omitempty"`
	// StartedAt is when the new ReplicaSet was seen.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// NewReplicaSet is the ReplicaSet rolled to.
	// +optional
	NewReplicaSet string `json:"newReplicaSet,omitempty"`
	// OldReplicaSets are the ReplicaSets rolled from.
	// +optional
	OldReplicaSets []string `json:"oldReplicaSets,omitempty"`
	// Chosen are the pods (NAMESPACE/NAME) picked for the action when the
	// point was reached. The choice is written before the action, so that
	// an action retried after a lost status write takes the same pods.
	// +optional
	Chosen []string `json:"chosen,omitempty"`
	// PointAt is when the action on the chosen pods was carried out.
	// +optional
	PointAt *metav1.Time `json:"pointAt,omitempty"`
	// Progress is the last seen updated and Ready replicas over desired.
	// +optional
	Progress string `json:"progress,omitempty"`
	// StalledAt is when Kubernetes reported the rollout stalled
	// (ProgressDeadlineExceeded).
	// +optional
	StalledAt *metav1.Time `json:"stalledAt,omitempty"`
	// CompletedAt is when every replica was updated and available.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
}

// NodeSpan is a NotReady period of a node.
type NodeSpan struct {
	// Node that was NotReady.
	Node string `json:"node"`
	// From is when its Ready condition left True.
	From metav1.Time `json:"from"`
	// To is when it was Ready again; unset while it lasts.
	// +optional
	To *metav1.Time `json:"to,omitempty"`
}

// EvictionRecord is one pod disrupted during the experiment.
type EvictionRecord struct {
	// Pod evicted, as NAMESPACE/NAME.
	Pod string `json:"pod"`
	// Node the pod ran on.
	Node string `json:"node,omitempty"`
	// Reason: TaintManagerEviction, Evicted (kubelet pressure), Preempted
	// or EvictionAPI.
	Reason string `json:"reason"`
	// Time of the DisruptionTarget condition Kubernetes set on the pod.
	Time metav1.Time `json:"time"`
	// PodDisruptionBudget that this eviction violated, if any.
	// +optional
	ViolatedPDB string `json:"violatedPDB,omitempty"`
	// QOSClass of the pod (BestEffort, Burstable, Guaranteed), when known:
	// the kubelet's eviction order is judged by it.
	// +optional
	QOSClass string `json:"qosClass,omitempty"`
	// Priority of the pod.
	// +optional
	Priority int32 `json:"priority,omitempty"`
	// Resource the kubelet reclaimed (memory, ephemeral-storage, pids).
	// +optional
	Resource string `json:"resource,omitempty"`
}

// TaintChange is a taint added to or removed from a target node.
type TaintChange struct {
	// Node changed.
	Node string `json:"node"`
	// Taint as KEY:EFFECT.
	Taint string `json:"taint"`
	// Added is true when the taint appeared, false when it went.
	Added bool `json:"added"`
	// Time of the change (the taint's timeAdded when it has one).
	Time metav1.Time `json:"time"`
}

// TimelineEntry is one event of the experiment.
type TimelineEntry struct {
	// Time of the event.
	Time metav1.Time `json:"time"`
	// Reason, also the Kubernetes Event's reason.
	Reason string `json:"reason"`
	// Message says what happened.
	Message string `json:"message"`
}

// InjectionRecord is one fault on one target.
type InjectionRecord struct {
	// Fault's name in the spec.
	Fault string `json:"fault"`
	// Target: a node's name, or a pod as NAMESPACE/NAME.
	Target string `json:"target"`
	// Node whose agent carried the fault.
	Node string `json:"node,omitempty"`
	// Round of a fault that acts again every interval (PodKill), from 1.
	// +optional
	Round int32 `json:"round,omitempty"`
	// Action taken on the target, such as "SIGTERM to the main process of
	// container app" or "delete with grace 0s".
	// +optional
	Action string `json:"action,omitempty"`
	// InjectedAt is when the agent put the fault in place.
	// +optional
	InjectedAt *metav1.Time `json:"injectedAt,omitempty"`
	// RecoveredAt is when the agent removed it.
	// +optional
	RecoveredAt *metav1.Time `json:"recoveredAt,omitempty"`
	// Error the agent reported, if any.
	// +optional
	Error string `json:"error,omitempty"`
	// Effect the agent reported, such as the memory a stressor held or an
	// OOM kill it forced.
	// +optional
	Effect string `json:"effect,omitempty"`
	// Superseded says why the fault had nothing left to act on, as when a
	// rollout terminated the pod a signal was meant for first: not an
	// error of the fault, and not counted as one.
	// +optional
	Superseded string `json:"superseded,omitempty"`
}

// ObjectiveResult is an objective's judgement.
type ObjectiveResult struct {
	// Name of the objective.
	Name string `json:"name"`
	// Expr is its CEL expression.
	Expr string `json:"expr"`
	// Verdict: Passed, Failed, Inconclusive (not measured) or Error.
	Verdict Verdict `json:"verdict"`
	// Message names the measurements the expression read, with values.
	// +optional
	Message string `json:"message,omitempty"`
}

// Experiment injects faults into a cluster and judges what users and the
// control plane felt against the objectives.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=exp;fle,categories=faultline
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Verdict",type=string,JSONPath=`.status.verdict`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Seed",type=integer,JSONPath=`.status.targetSeed`,priority=1
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
type Experiment struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is what to break and what must still hold. It cannot change once
	// created: create a new experiment instead.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: create a new experiment instead"
	Spec ExperimentSpec `json:"spec"`
	// Status is what happened.
	// +optional
	Status ExperimentStatus `json:"status,omitempty"`
}

// ExperimentList is a list of Experiments.
// +kubebuilder:object:root=true
type ExperimentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Experiment `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Experiment{}, &ExperimentList{})
}
