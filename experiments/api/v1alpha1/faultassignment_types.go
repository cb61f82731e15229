package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// AgentIdentityPrefix begins the name of each node's agent identity: the
// ServiceAccount, Role and RoleBinding (in the agents' namespace) that let
// the agent of that node read its own FaultAssignment and no other. The
// controller makes them; the agent asks for a token of its node's
// ServiceAccount, which an admission policy grants only to the agent
// running on that node.
const AgentIdentityPrefix = "faultline-agent-"

// DefaultAgentNamespace holds the nodes' FaultAssignments and their agents'
// identities, and nothing else. Namespaced, not cluster-wide: the per-node
// RoleBindings there are walked by the RBAC authorizer only for requests in
// that namespace, where thousands of per-node ClusterRoleBindings slowed
// every request of the cluster that no earlier binding allowed.
const DefaultAgentNamespace = "faultline-agents"

// AgentIdentity names the identity of node's agent.
func AgentIdentity(node string) string { return AgentIdentityPrefix + node }

// FaultAssignmentSpec is what one node's agent must do. The controller
// writes it; the agent on spec.nodeName carries it out and reports through
// the status with observedGeneration, as Chaos Mesh's PodChaos hand-off.
//
// There is one per node, named after the node, holding the faults of every
// experiment there: a name known in advance is what lets RBAC give each
// node's agent its own assignment and no other (resourceNames).
type FaultAssignmentSpec struct {
	// NodeName is the node whose agent carries the faults out: the
	// assignment's own name.
	// +required
	// +kubebuilder:validation:MinLength=1
	NodeName string `json:"nodeName"`

	// Faults to hold on this node, each until its absolute deadline, of
	// whichever experiments placed them here.
	// +listType=map
	// +listMapKey=id
	// +kubebuilder:validation:MaxItems=1024
	// +optional
	Faults []AssignedFault `json:"faults,omitempty"`
}

// ExperimentRef points at the owning Experiment.
type ExperimentRef struct {
	// Namespace of the Experiment.
	Namespace string `json:"namespace"`
	// Name of the Experiment.
	Name string `json:"name"`
	// UID of the Experiment, so that a new one of the same name is another.
	UID types.UID `json:"uid"`
}

// AssignedFault is one fault on one target of the node, in the terms the
// agent's injectors understand: no Kubernetes objects.
type AssignedFault struct {
	// ID is unique across the cluster; the injectors name what they add
	// after it (for example the nftables table faultline-ID).
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`
	ID string `json:"id"`

	// Experiment that the fault belongs to.
	// +required
	Experiment ExperimentRef `json:"experiment"`

	// Fault is the experiment's fault name.
	Fault string `json:"fault"`

	// Type is the fault family.
	Type FaultType `json:"type"`

	// Target on the node: the node's name for the node itself, or a pod as
	// NAMESPACE/NAME with its UID.
	Target string `json:"target"`
	// +optional
	PodUID types.UID `json:"podUID,omitempty"`
	// Round of a fault that acts again every interval (PodKill), from 1:
	// its record's.
	// +optional
	Round int32 `json:"round,omitempty"`

	// StartAt is when to inject.
	StartAt metav1.Time `json:"startAt"`
	// Deadline is when the agent recovers the fault by its own clock,
	// whether or not it can reach the API server.
	Deadline metav1.Time `json:"deadline"`

	// Recover asks the agent to recover the fault now (abort, deletion).
	// +optional
	Recover bool `json:"recover,omitempty"`

	// NetworkLoss parameters, with the API server preset resolved.
	// +optional
	NetworkLoss *NetworkLoss `json:"networkLoss,omitempty"`

	// Signal to send, for type Rollout: to the main process of one
	// container of the target pod.
	// +optional
	Signal *ContainerSignal `json:"signal,omitempty"`

	// DiskLatency parameters, for type DiskLatency; for a pod target,
	// ContainerID names the container whose main process is traced.
	// +optional
	DiskLatency *DiskLatency `json:"diskLatency,omitempty"`
	// ContainerID of the pod target's container, for DiskLatency and
	// MemoryPressure.
	// +optional
	ContainerID string `json:"containerID,omitempty"`

	// MemoryPressure parameters, for type MemoryPressure, with the size
	// resolved to bytes: the container's memory cgroup for a pod target,
	// the node's pod cgroup for the node itself.
	// +optional
	MemoryPressure *AssignedMemoryPressure `json:"memoryPressure,omitempty"`
}

// AssignedMemoryPressure is a memory fault in bytes.
type AssignedMemoryPressure struct {
	// SizeBytes the stressor makes resident.
	// +kubebuilder:validation:Minimum=1
	SizeBytes int64 `json:"sizeBytes"`
	// RampBytesPerSecond is how fast it grows.
	// +kubebuilder:validation:Minimum=1
	RampBytesPerSecond int64 `json:"rampBytesPerSecond"`
	// PushPastLimit allocates past the container's limit until an OOM kill.
	// +optional
	PushPastLimit bool `json:"pushPastLimit,omitempty"`
}

// ContainerSignal names a container by its runtime ID and the signal its
// main process gets.
type ContainerSignal struct {
	// ContainerID as the kubelet reports it, such as containerd://ABC...
	// +kubebuilder:validation:MinLength=1
	ContainerID string `json:"containerID"`
	// Container's name, for the record.
	// +optional
	Container string `json:"container,omitempty"`
	// Signal: SIGTERM or SIGKILL.
	// +kubebuilder:validation:Enum=SIGTERM;SIGKILL
	Signal string `json:"signal"`
}

// FaultState is where one assigned fault is on the node.
// +kubebuilder:validation:Enum=Pending;Injected;Recovered;Failed
type FaultState string

const (
	FaultPending   FaultState = "Pending"
	FaultInjected  FaultState = "Injected"
	FaultRecovered FaultState = "Recovered"
	FaultFailed    FaultState = "Failed"
)

// FaultAssignmentStatus is the agent's report.
type FaultAssignmentStatus struct {
	// ObservedGeneration is the spec generation the agent has acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Faults and their state on the node.
	// +optional
	// +listType=map
	// +listMapKey=id
	Faults []AssignedFaultStatus `json:"faults,omitempty"`
}

// AssignedFaultStatus is one fault's state on the node.
type AssignedFaultStatus struct {
	// ID of the fault in the spec.
	ID string `json:"id"`
	// State, from the agent's ledger.
	State FaultState `json:"state"`
	// InjectedAt is when the agent put the fault in place.
	// +optional
	InjectedAt *metav1.Time `json:"injectedAt,omitempty"`
	// RecoveredAt is when the agent removed it.
	// +optional
	RecoveredAt *metav1.Time `json:"recoveredAt,omitempty"`
	// Error the agent met, if any.
	// +optional
	Error string `json:"error,omitempty"`
	// Message is what the injector reports of the fault's effect, such
	// as a stressor's resident memory or an OOM kill it forced.
	// +optional
	Message string `json:"message,omitempty"`
}

// FaultAssignment is what one node's faultline agent must do and until
// when: one per node, named after it, in the agents' namespace
// (faultline-agents by default). faultline's controller manages it; people
// read it to see what a node is holding.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=fa,categories=faultline
// +kubebuilder:validation:XValidation:rule="self.metadata.name == self.spec.nodeName",message="spec.nodeName: must be the assignment's own name (one FaultAssignment per node, named after it)"
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.nodeName`
// +kubebuilder:printcolumn:name="Faults",type=string,JSONPath=`.spec.faults[*].id`,priority=1
// +kubebuilder:printcolumn:name="Observed",type=integer,JSONPath=`.status.observedGeneration`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type FaultAssignment struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is what the node's agent must do, written by the controller.
	// +required
	Spec FaultAssignmentSpec `json:"spec"`
	// Status is the agent's report.
	// +optional
	Status FaultAssignmentStatus `json:"status,omitempty"`
}

// FaultAssignmentList is a list of FaultAssignments.
// +kubebuilder:object:root=true
type FaultAssignmentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []FaultAssignment `json:"items"`
}

func init() {
	SchemeBuilder.Register(&FaultAssignment{}, &FaultAssignmentList{})
}
