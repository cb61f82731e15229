// Package measures declares every measurement objectives may read: each
// analyzer's, and the recovery the controller measures once the faults
// are over. Objectives are type-checked against it, so that a misspelt
// measurement is refused when the experiment is validated, not found
// missing after real faults.
package measures

import (
	"faultline.dev/faultline/analyzers"
	"faultline.dev/faultline/analyzers/evictions"
	"faultline.dev/faultline/analyzers/nodes"
	"faultline.dev/faultline/analyzers/oomkills"
	"faultline.dev/faultline/analyzers/prometheus"
	"faultline.dev/faultline/analyzers/traffic"
	"faultline.dev/faultline/analyzers/workloads"
)

// Recovery is what the controller measures of the recovery, under
// "recovery".
var Recovery = []analyzers.Measurement{
	{Path: "recovery.seconds", Kind: analyzers.Number, Doc: "from the end of the faults until the target nodes are Ready and the workloads available again"},
	{Path: "recovery.nodeSeconds", Kind: analyzers.Number, Doc: "from the end of the faults until the target nodes are Ready again"},
	{Path: "recovery.workloads", Kind: analyzers.Number, Doc: "Deployments waited for"},
}

// All are every declared measurement.
var All = analyzers.Declare(nodes.Measurements, evictions.Measurements, oomkills.Measurements,
	workloads.Measurements, traffic.Measurements, prometheus.Measurements, Recovery)

// KeyFigures are the measurements worth a glance, in this order, where
// measured: the reports' key figures and the CLI's live line. A map's key
// is written after a dot, as the status flattens them.
var KeyFigures = []string{
	"nodes.notReadyNodes", "nodes.maxNotReadySeconds", "evictions.count", "oom.kills",
	"traffic.requests", "traffic.errors", "traffic.errorRatio", "traffic.status.502", "traffic.latency.p99",
	"nodes.memoryPressure.totalSeconds", "recovery.seconds", "prometheus.fault.walFsyncP99", "prometheus.fault.leaderChanges",
}
