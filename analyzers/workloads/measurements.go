package workloads

import "faultline.dev/faultline/analyzers"

// Measurements are what Measure returns under "workloads".
var Measurements = []analyzers.Measurement{
	{Path: "workloads.workloads", Kind: analyzers.Number, Doc: "Deployments measured: those on the targets and those spec.workloads names"},
	{Path: "workloads.unavailableSeconds", Kind: analyzers.Number, Doc: "the longest any of them had no replica available, in seconds"},
	{Path: "workloads.degradedSeconds", Kind: analyzers.Number, Doc: "the longest any of them had fewer available replicas than it wants, in seconds"},
	{Path: "workloads.minAvailable", Kind: analyzers.Number, Doc: "the fewest available replicas any of them had", Sometimes: true},
	{Path: "workloads.byWorkload.*.unavailableSeconds", Kind: analyzers.Number, Doc: "one Deployment's (NAMESPACE/NAME) seconds with no replica available"},
	{Path: "workloads.byWorkload.*.degradedSeconds", Kind: analyzers.Number, Doc: "one Deployment's seconds with fewer available replicas than it wants"},
	{Path: "workloads.byWorkload.*.minAvailable", Kind: analyzers.Number, Doc: "one Deployment's fewest available replicas"},
}
