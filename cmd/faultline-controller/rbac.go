package main

// The controller's cluster-wide permissions, from which `make generate`
// writes the chart's ClusterRole (charts/faultline/files/rbac). Each rule
// says what needs it; leader election's Lease is the chart's Role in
// faultline's own namespace, not a cluster-wide right.

// Experiments and schedules are its own; FaultAssignments it writes for agents.
// +kubebuilder:rbac:groups=faultline.dev,resources=experiments;schedules;faultassignments,verbs=get;list;watch;create;update;patch;delete
// FaultAssignments' status is the agents', but RBAC lets it grant each
// agent only rights it holds itself (--agent-role).
// +kubebuilder:rbac:groups=faultline.dev,resources=experiments/status;schedules/status;faultassignments/status,verbs=get;update;patch
// Each node's agent identity (--agent-role): a Role with the agent's rules
// for that node's FaultAssignment only, bound to a ServiceAccount of the
// node. The chart's Role grants those in the agents' namespace only, not
// here: the controller holds no cluster-wide right on roles or bindings.
// RBAC refuses a role that grants more than the controller holds itself,
// and the chart's admission policy refuses any that is not an identity's
// shape. The template ClusterRole is read by name.
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=get
// Owner references that block deletion need the owner's finalizers subresource.
// +kubebuilder:rbac:groups=faultline.dev,resources=experiments/finalizers;schedules/finalizers,verbs=update

// Targets are resolved from pods, nodes and namespaces (the opt-in label);
// the rollout fault deletes pods at its point of the rollout.
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups="",resources=nodes;namespaces,verbs=get;list;watch
// Events are its own record and the evictions analyzer's source.
// +kubebuilder:rbac:groups="",resources=events,verbs=get;list;watch;create;patch
// Reports are kept in a ConfigMap beside the experiment; the kill switch is one.
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch;delete
// Rollout and Surge faults patch a Deployment's template or replicas (never
// a full update: the Deployment is the user's) and follow its ReplicaSets;
// the workloads analyzer reads what each kept.
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get;list;watch
// Traffic follows the ready endpoints; evictions are checked against budgets.
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// traffic.url names a Service (NAME.NAMESPACE.svc), resolved to its ClusterIP.
// +kubebuilder:rbac:groups="",resources=services,verbs=get
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch
// spec.engine: chaos-mesh creates one Chaos Mesh object per fault and
// deletes it at the deadline, on abort and on deletion (no deletecollection:
// it deletes its own, one by one).
// +kubebuilder:rbac:groups=chaos-mesh.org,resources=networkchaos;iochaos;stresschaos;podchaos,verbs=get;list;create;delete
// prometheus.scrape.apiServer reads the API server's own metrics.
// +kubebuilder:rbac:urls=/metrics,verbs=get
