package analyzers

import (
	"fmt"
	"sort"
	"strings"
)

// Kind is a measurement's type as an objective's CEL sees it.
type Kind string

const (
	Number Kind = "number" // an int or a double: counts, seconds, shares
	Bool   Kind = "bool"
	String Kind = "string"
	List   Kind = "list"           // of maps, read with CEL's macros (all, exists, filter)
	Map    Kind = "map"            // keyed by what the analyzer finds: a node, a reason
	Dyn    Kind = "number or list" // a PromQL result: a scalar, or a vector
)

// Measurement is one thing an analyzer measures, declared once: its path
// as objectives write it, its kind, and what it means. A "*" in the path
// stands for a key found at run time (a node, an HTTP status, a query's
// name), written either way in CEL: traffic.status["502"] or
// prometheus.queries.walFsyncP99.phase.
type Measurement struct {
	Path string
	Kind Kind
	Doc  string
	// Sometimes: measured only once there is something to measure (a
	// first OOM kill, a workload named); until then an objective that
	// reads it is Inconclusive.
	Sometimes bool
}

// Declarations are every measurement the analyzers make, by path.
type Declarations map[string]Measurement

// Declare gathers analyzers' measurements; a path declared twice is a
// programming error.
func Declare(lists ...[]Measurement) Declarations {
	d := Declarations{}
	for _, l := range lists {
		for _, m := range l {
			if _, dup := d[m.Path]; dup {
				panic("measurement declared twice: " + m.Path)
			}
			d[m.Path] = m
		}
	}
	return d
}

// Lookup finds the measurement a path of segments names. A path that
// leads to declared measurements (nodes.memoryPressure) is a map of them.
func (d Declarations) Lookup(segments []string) (Measurement, bool) {
	prefix := false
	for _, m := range d {
		pat := strings.Split(m.Path, ".")
		if len(pat) < len(segments) {
			continue
		}
		if !matches(pat[:len(segments)], segments) {
			continue
		}
		if len(pat) == len(segments) {
			return m, true
		}
		prefix = true
	}
	if prefix {
		return Measurement{Path: strings.Join(segments, "."), Kind: Map}, true
	}
	return Measurement{}, false
}

// AnyKey is a segment that stands for a key an objective computes (a
// variable): it may be any key of a map.
const AnyKey = "\x00"

func matches(pattern, segments []string) bool {
	for i, p := range pattern {
		if p != "*" && p != segments[i] && segments[i] != AnyKey {
			return false
		}
	}
	return true
}

// Nearest is the declared path closest to what was written, for a
// "did you mean".
func (d Declarations) Nearest(written string) string {
	best, bestD := "", -1
	for p := range d {
		if dist := distance(written, p); bestD < 0 || dist < bestD || dist == bestD && p < best {
			best, bestD = p, dist
		}
	}
	return best
}

// distance is Levenshtein's edit distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// Sorted lists the declarations by path.
func (d Declarations) Sorted() []Measurement {
	out := make([]Measurement, 0, len(d))
	for _, m := range d {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Check compares what an analyzer measured (under root) with the
// declarations: every value measured must be declared, of its kind. It
// returns the paths that are not.
func (d Declarations) Check(root string, measured map[string]any) []string {
	var bad []string
	var walk func(segments []string, v any)
	walk = func(segments []string, v any) {
		m, ok := d.Lookup(segments)
		path := strings.Join(segments, ".")
		switch {
		case !ok:
			bad = append(bad, path+" is not declared")
			return
		case m.Kind == Map:
			sub, isMap := v.(map[string]any)
			if !isMap {
				bad = append(bad, fmt.Sprintf("%s is declared a map and is %T", path, v))
				return
			}
			for k, x := range sub {
				walk(append(append([]string(nil), segments...), k), x)
			}
			return
		}
		if k := kindOf(v); k != m.Kind && (m.Kind != Dyn || k != Number && k != List) {
			bad = append(bad, fmt.Sprintf("%s is declared a %s and is %T", path, m.Kind, v))
		}
	}
	for k, v := range measured {
		walk([]string{root, k}, v)
	}
	sort.Strings(bad)
	return bad
}

func kindOf(v any) Kind {
	switch v.(type) {
	case int, int32, int64, uint64, float32, float64:
		return Number
	case bool:
		return Bool
	case string:
		return String
	case []any, []string, []float64, []map[string]any:
		return List
	case map[string]any:
		return Map
	}
	return ""
}
