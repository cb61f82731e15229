package prometheus

import (
	"fmt"
	"math"
	"strings"
)

// The metric families the built-ins read.
const (
	walFsync      = "etcd_disk_wal_fsync_duration_seconds"
	backendCommit = "etcd_disk_backend_commit_duration_seconds"
	leaderChanges = "etcd_server_leader_changes_seen_total"
	apiRequests   = "apiserver_request_duration_seconds"
)

// writeVerbs are the API server's verbs that write. WATCH and CONNECT
// last as long as the client wants and would swamp any quantile.
var writeVerbs = []string{"POST", "PUT", "PATCH", "DELETE", "APPLY"}

// kind is how a built-in reduces a family over a window.
type kind int

const (
	// p99 is the 99th percentile of the window's observations, seconds.
	p99 kind = iota
	// observations counts the window's observations: 0 tells a quiet
	// window from one that was not measured (no key).
	observations
	// increase of a counter: each etcd member counts every leader change
	// it sees, so members are not summed but the highest is kept.
	increase
)

// builtin is a measurement every window has.
type builtin struct {
	name   string
	family string
	kind   kind
}

var builtins = []builtin{
	{"walFsyncP99", walFsync, p99},
	{"walFsyncs", walFsync, observations},
	{"backendCommitP99", backendCommit, p99},
	{"backendCommits", backendCommit, observations},
	{"leaderChanges", leaderChanges, increase},
	{"apiServerWriteP99", apiRequests, p99},
	{"apiServerWrites", apiRequests, observations},
}

// overBaseline are the built-ins whose fault-minus-baseline difference
// Measure adds as NAMEOverBaseline.
var overBaseline = []string{"walFsyncP99", "backendCommitP99", "apiServerWriteP99"}

// promQL is the built-in as an instant query over the last rng, such as
// "60s".
func (b builtin) promQL(rng string) string {
	sel := ""
	if b.family == apiRequests {
		sel = `{verb=~"` + strings.Join(writeVerbs, "|") + `"}`
	}
	switch b.kind {
	case p99:
		return fmt.Sprintf("histogram_quantile(0.99, sum by (le) (increase(%s_bucket%s[%s])))", b.family, sel, rng)
	case observations:
		return fmt.Sprintf("sum(increase(%s_count%s[%s]))", b.family, sel, rng)
	}
	return fmt.Sprintf("max(increase(%s%s[%s]))", b.family, sel, rng)
}

// reduce is the built-in over what each target observed in a window; ok
// is false when no target has the family, or the quantile has no
// observations to take.
func (b builtin) reduce(targets []metrics) (float64, bool) {
	sum, highest, found := histogram{}, 0.0, false
	for _, m := range targets {
		series, ok := m[b.family]
		if !ok {
			continue
		}
		found = true
		of := histogram{}
		for _, h := range series {
			of.add(h)
		}
		highest = max(highest, of[inf])
		sum.add(of)
	}
	if !found {
		return 0, false
	}
	switch b.kind {
	case p99:
		q := sum.quantile(0.99)
		return q, !math.IsNaN(q)
	case observations:
		return sum[inf], true
	}
	return highest, true
}
