package main

// The agent reads FaultAssignments and reports on them, and nothing else:
// no Secret, no pod, no node. `make generate` writes the chart's
// ClusterRole from these markers (charts/faultline/files/rbac).
// +kubebuilder:rbac:groups=faultline.dev,resources=faultassignments,verbs=get;list;watch
// +kubebuilder:rbac:groups=faultline.dev,resources=faultassignments/status,verbs=get;update;patch
