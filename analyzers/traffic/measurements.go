package traffic

import "faultline.dev/faultline/analyzers"

// Windows are the windows the controller measures traffic in: before the
// faults, during them, and after them.
var Windows = []string{"baseline", "fault", "recovery"}

// Measurements are what Measure returns under "traffic": over the whole
// run, and the same over each window.
var Measurements = func() []analyzers.Measurement {
	out := tallyMeasurements("traffic", "")
	for _, w := range Windows {
		out = append(out, tallyMeasurements("traffic."+w, " in the "+w+" window")...)
	}
	return append(out,
		analyzers.Measurement{Path: "traffic.partial", Kind: analyzers.Bool, Doc: "true, alone, when the controller restarted after the faults began: the run's traffic was not measured whole, and objectives on it are Inconclusive", Sometimes: true},
		analyzers.Measurement{Path: "traffic.rate", Kind: analyzers.Number, Doc: "the rate asked, in requests a second"},
		analyzers.Measurement{Path: "traffic.achievedRate", Kind: analyzers.Number, Doc: "requests that left per second of the run so far"},
		analyzers.Measurement{Path: "traffic.sendLagP99", Kind: analyzers.Number, Doc: "the p99 of how late requests left their schedule, in seconds: high means the prober lacked CPU"},
		analyzers.Measurement{Path: "traffic.inFlight", Kind: analyzers.Number, Doc: "requests sent and not yet ended"},
		analyzers.Measurement{Path: "traffic.errorRatioOverBaseline", Kind: analyzers.Number, Doc: "the fault window's errorRatio minus the baseline's", Sometimes: true},
		analyzers.Measurement{Path: "traffic.latencyP99OverBaseline", Kind: analyzers.Number, Doc: "the fault window's latency p99 minus the baseline's, in seconds", Sometimes: true},
	)
}()

func tallyMeasurements(p, in string) []analyzers.Measurement {
	out := []analyzers.Measurement{
		{Path: p + ".requests", Kind: analyzers.Number, Doc: "requests whose outcome is known" + in},
		{Path: p + ".answered", Kind: analyzers.Number, Doc: "requests that got a status and a whole body" + in},
		{Path: p + ".errors", Kind: analyzers.Number, Doc: "5xx answers and requests that got no answer" + in},
		{Path: p + ".errorRatio", Kind: analyzers.Number, Doc: "errors over requests" + in + ", 0 before any"},
		{Path: p + ".status.*", Kind: analyzers.Number, Doc: "answers by HTTP status code" + in + ", such as status[\"502\"]; 500, 502, 503 and 504 are always there"},
	}
	for _, c := range classNames {
		out = append(out, analyzers.Measurement{Path: p + ".errorsByClass." + c, Kind: analyzers.Number, Doc: "failed requests of class " + c + in})
	}
	for _, q := range []string{"p50", "p90", "p99", "p999", "max", "mean"} {
		out = append(out, analyzers.Measurement{Path: p + ".latency." + q, Kind: analyzers.Number, Doc: "latency " + q + " of the answered requests" + in + ", in seconds from their scheduled send"})
	}
	return out
}
