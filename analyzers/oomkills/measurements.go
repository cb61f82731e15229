package oomkills

import "faultline.dev/faultline/analyzers"

// Measurements are what Measure returns under "oom".
var Measurements = []analyzers.Measurement{
	{Path: "oom.kills", Kind: analyzers.Number, Doc: "containers OOM-killed since the experiment's start"},
	{Path: "oom.pods", Kind: analyzers.Number, Doc: "pods with an OOM kill"},
	{Path: "oom.containers", Kind: analyzers.Number, Doc: "containers with an OOM kill"},
	{Path: "oom.restarts", Kind: analyzers.Number, Doc: "restarts of the OOM-killed containers"},
	{Path: "oom.byNamespace.*", Kind: analyzers.Number, Doc: "OOM kills by namespace"},
	{Path: "oom.byNode.*", Kind: analyzers.Number, Doc: "OOM kills by node"},
	{Path: "oom.secondsToFirst", Kind: analyzers.Number, Doc: "from the start to the first OOM kill, in seconds (only once one came)", Sometimes: true},
	{Path: "oom.secondsToLast", Kind: analyzers.Number, Doc: "from the start to the last OOM kill, in seconds (only once one came)", Sometimes: true},
}
