package nodes

import "faultline.dev/faultline/analyzers"

// Measurements are what Measure returns under "nodes", declared for the
// objectives' type check and faultline validate --list-measurements.
var Measurements = append([]analyzers.Measurement{
	{Path: "nodes.maxNotReadySeconds", Kind: analyzers.Number, Doc: "the longest a target node was NotReady, in seconds (an open span counts to now)"},
	{Path: "nodes.totalNotReadySeconds", Kind: analyzers.Number, Doc: "NotReady seconds of every target node, summed"},
	{Path: "nodes.notReadySpans", Kind: analyzers.Number, Doc: "NotReady spans of the target nodes"},
	{Path: "nodes.notReadyNodes", Kind: analyzers.Number, Doc: "target nodes NotReady now"},
	{Path: "nodes.nodesAffected", Kind: analyzers.Number, Doc: "target nodes that were NotReady at some point"},
	{Path: "nodes.taintsAdded", Kind: analyzers.Number, Doc: "taints the target nodes got"},
	{Path: "nodes.unreachableTainted", Kind: analyzers.Bool, Doc: "a target node got the node.kubernetes.io/unreachable NoExecute taint"},
	{Path: "nodes.secondsToNotReady", Kind: analyzers.Number, Doc: "from the experiment's start to the first NotReady, in seconds (only once a node went NotReady)", Sometimes: true},
	{Path: "nodes.secondsToMemoryPressure", Kind: analyzers.Number, Doc: "from the experiment's start to the first MemoryPressure, in seconds (only once one came)", Sometimes: true},
}, pressureMeasurements()...)

func pressureMeasurements() []analyzers.Measurement {
	var out []analyzers.Measurement
	for _, name := range []string{"memoryPressure", "diskPressure", "pidPressure"} {
		p := "nodes." + name
		out = append(out,
			analyzers.Measurement{Path: p + ".count", Kind: analyzers.Number, Doc: "spans of the condition True on the target nodes"},
			analyzers.Measurement{Path: p + ".nodes", Kind: analyzers.Number, Doc: "target nodes that had the condition"},
			analyzers.Measurement{Path: p + ".open", Kind: analyzers.Number, Doc: "target nodes with the condition True now"},
			analyzers.Measurement{Path: p + ".totalSeconds", Kind: analyzers.Number, Doc: "seconds of the condition True, summed over the target nodes"},
			analyzers.Measurement{Path: p + ".longestSeconds", Kind: analyzers.Number, Doc: "the longest span of the condition True, in seconds"},
			analyzers.Measurement{Path: p + ".byNode.*", Kind: analyzers.Number, Doc: "seconds of the condition True, by node"},
		)
	}
	return out
}
