package evictions

import "faultline.dev/faultline/analyzers"

// Measurements are what Measure returns under "evictions".
var Measurements = []analyzers.Measurement{
	{Path: "evictions.count", Kind: analyzers.Number, Doc: "pods evicted since the experiment's start (taint manager, kubelet pressure, preemption, API evictions)"},
	{Path: "evictions.peakPerMinute", Kind: analyzers.Number, Doc: "the most evictions in any 60 s"},
	{Path: "evictions.ratePerMinute", Kind: analyzers.Number, Doc: "evictions per minute since the start"},
	{Path: "evictions.byNode.*", Kind: analyzers.Number, Doc: "evictions by node"},
	{Path: "evictions.byNamespace.*", Kind: analyzers.Number, Doc: "evictions by namespace"},
	{Path: "evictions.byQOSClass.*", Kind: analyzers.Number, Doc: "evictions by QoS class (BestEffort, Burstable, Guaranteed)"},
	{Path: "evictions.reasons.*", Kind: analyzers.Number, Doc: "evictions by reason (TaintManagerEviction, Evicted, Preempted, OOMKilled, ...)"},
	{Path: "evictions.nodes", Kind: analyzers.Number, Doc: "nodes with an eviction"},
	{Path: "evictions.namespaces", Kind: analyzers.Number, Doc: "namespaces with an eviction"},
	{Path: "evictions.pdbViolations", Kind: analyzers.Number, Doc: "evictions that broke a PodDisruptionBudget"},
	{Path: "evictions.order", Kind: analyzers.List, Doc: "the kubelet's evictions in order, each with namespace, pod, node, qosClass, priority, resource and seconds"},
	{Path: "evictions.orderKept", Kind: analyzers.Bool, Doc: "no eviction the kubelet's documented ranking could not have made"},
	{Path: "evictions.orderBreach", Kind: analyzers.String, Doc: "the first eviction out of order (only when orderKept is false)", Sometimes: true},
	{Path: "evictions.bestEffortFirst", Kind: analyzers.Bool, Doc: "no Burstable or Guaranteed pod evicted while a BestEffort one was left"},
	{Path: "evictions.thresholdMet", Kind: analyzers.Number, Doc: "the kubelets' EvictionThresholdMet events"},
	{Path: "evictions.thresholdMetByNode.*", Kind: analyzers.Number, Doc: "EvictionThresholdMet events by node"},
	{Path: "evictions.secondsToThresholdMet", Kind: analyzers.Number, Doc: "from the start to the first EvictionThresholdMet, in seconds (only once one came)", Sometimes: true},
	{Path: "evictions.admissionsRefused", Kind: analyzers.Number, Doc: "pods the kubelet refused to admit under pressure"},
	{Path: "evictions.workloadPods", Kind: analyzers.Number, Doc: "pods of the fault's workload at its start (pod and node targets)", Sometimes: true},
	{Path: "evictions.workloadEvicted", Kind: analyzers.Number, Doc: "of them, those evicted", Sometimes: true},
	{Path: "evictions.lostShare", Kind: analyzers.Number, Doc: "the share of the workload evicted, in percent", Sometimes: true},
}
