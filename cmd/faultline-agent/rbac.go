package main

// What an agent may do: read its node's FaultAssignment and report on it,
// and nothing else: no Secret, no pod, no node. `make generate` writes the
// chart's agent ClusterRole from these markers (charts/faultline/files/rbac);
// it is bound to no one. The controller copies its rules into each node's
// own identity, restricted to that node's FaultAssignment (resourceNames),
// and the DaemonSet's shared service account may only ask for the token of
// its own node's identity (the chart's Role and admission policy).
// +kubebuilder:rbac:groups=faultline.dev,resources=faultassignments,verbs=get;list;watch
// +kubebuilder:rbac:groups=faultline.dev,resources=faultassignments/status,verbs=get;update;patch
