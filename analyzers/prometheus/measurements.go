package prometheus

import "faultline.dev/faultline/analyzers"

// windowNames are the windows the built-ins are measured in.
var windowNames = []string{"baseline", "fault", "recovery"}

// Measurements are what Measure returns under "prometheus".
var Measurements = func() []analyzers.Measurement {
	doc := map[string]string{
		"walFsyncP99":       "etcd's WAL fsync p99, in seconds",
		"walFsyncs":         "etcd's WAL fsyncs observed",
		"backendCommitP99":  "etcd's backend commit p99, in seconds",
		"backendCommits":    "etcd's backend commits observed",
		"leaderChanges":     "etcd leader changes, as the member that saw the most counts them",
		"apiServerWriteP99": "the API server's write (POST, PUT, PATCH, DELETE, APPLY) p99, in seconds",
		"apiServerWrites":   "the API server's writes observed",
	}
	out := []analyzers.Measurement{
		{Path: "prometheus.errors", Kind: analyzers.List, Doc: "what went wrong measuring, such as a target that did not answer"},
		{Path: "prometheus.partial", Kind: analyzers.Bool, Doc: "true, alone, when the controller restarted after the faults began: the windows were not measured whole, and objectives on them are Inconclusive", Sometimes: true},
	}
	for _, w := range windowNames {
		for _, b := range builtins {
			out = append(out, analyzers.Measurement{Path: "prometheus." + w + "." + b.name, Kind: analyzers.Number, Doc: doc[b.name] + " in the " + w + " window"})
		}
		out = append(out, analyzers.Measurement{Path: "prometheus." + w + ".error", Kind: analyzers.String, Doc: "why the " + w + " window could not measure everything"})
	}
	for _, b := range overBaseline {
		out = append(out, analyzers.Measurement{Path: "prometheus." + b + "OverBaseline", Kind: analyzers.Number, Doc: "the fault window's " + b + " minus the baseline's", Sometimes: true})
	}
	q := "prometheus.queries.*."
	out = append(out,
		analyzers.Measurement{Path: q + "result", Kind: analyzers.Dyn, Doc: "the query's last result: a number (scalar) or a list of numbers (vector)"},
		analyzers.Measurement{Path: q + "baseline", Kind: analyzers.Dyn, Doc: "the query's result at the end of the baseline window"},
		analyzers.Measurement{Path: q + "measurements", Kind: analyzers.Number, Doc: "times the query was measured"},
		analyzers.Measurement{Path: q + "failed", Kind: analyzers.Number, Doc: "measurements judged failed by its conditions"},
		analyzers.Measurement{Path: q + "errors", Kind: analyzers.Number, Doc: "measurements that could not be judged"},
		analyzers.Measurement{Path: q + "phase", Kind: analyzers.String, Doc: "Running, then Successful, Failed or Error, as Argo Rollouts' analysis"},
		analyzers.Measurement{Path: q + "error", Kind: analyzers.String, Doc: "the last error"},
	)
	for _, w := range windowNames {
		for _, s := range []string{"min", "max", "mean"} {
			out = append(out, analyzers.Measurement{Path: q + "windows." + w + "." + s, Kind: analyzers.Number, Doc: "the query's " + s + " over the " + w + " window, asked as a range query"})
		}
		out = append(out, analyzers.Measurement{Path: q + "windows." + w + ".points", Kind: analyzers.Number, Doc: "the points of the range query over the " + w + " window"})
	}
	return out
}()
