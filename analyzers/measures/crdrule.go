package measures

import (
	"regexp"
	"sort"
	"strings"

	"faultline.dev/faultline/analyzers"
)

// Rule is a CEL check of one objective's expression, for the API server:
// Expression is true when the objective may be stored, Message says why
// not.
type Rule struct{ Expression, Message string }

// methods are CEL's methods and macros that may follow a measurement.
var methods = []string{"all", "exists", "exists_one", "map", "filter", "size", "contains", "startsWith", "endsWith", "matches"}

// AdmissionRules are the checks the API server applies to the objective
// expression named by expr (a CEL string, such as o.expr), so that
// kubectl apply and its dry run refuse a misspelt measurement, or a number
// compared with a string, as faultline validate does. The API server
// cannot type-check an objective: the rules read the chains of names that
// start with an analyzer's. The first refuses one that is not a declared
// measurement, a map of them, or one followed by a CEL method, and
// suggests the declared names it is nearest to; the second refuses a
// number measurement compared with a quoted literal.
func AdmissionRules(d analyzers.Declarations, expr string) []Rule {
	roots, prefixes, numbers := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for p, m := range d {
		segs := strings.Split(p, ".")
		roots[segs[0]] = true
		for i := 2; i <= len(segs); i++ {
			prefixes[strings.Join(segs[:i], ".")] = true
		}
		if m.Kind == analyzers.Number {
			numbers[p] = true
		}
	}
	const edge = `(^|[^A-Za-z0-9_.])`
	chain := edge + `(` + strings.Join(sortedKeys(roots), "|") + `)(\.[A-Za-z0-9_]+)+`
	ok := `^[^A-Za-z0-9_.]?(` + alternatives(prefixes) + `)(\.(` + strings.Join(methods, "|") + `))?$`
	bad := expr + ".findAll(r'" + chain + "').filter(m, !m.matches(r'" + ok + "'))"
	// The nearest: declared names that share all but the last two letters
	// of what was written (traffic.errorRatoi: traffic.errorRatio).
	names := "[" + quoted(fixed(d)) + "]"
	misspelt := Rule{
		Expression: bad + ".size() == 0",
		Message: "'names no measurement: ' + " + bad + ".map(m, m.matches(r'^[A-Za-z]') ? m : m.substring(1)).map(m, m + ' (did you mean ' + " +
			names + ".filter(n, size(n) > 4 && m.startsWith(n.substring(0, size(n) - 2))).join(' or ') + '?)').join(', ') + '; faultline validate --list-measurements lists them'",
	}
	cmp := `\s*(==|!=|<=|>=|<|>)\s*`
	num := `(` + alternatives(numbers) + `)`
	// Quotes by code: the rule's strings are CEL raw strings in quotes.
	const q, notQ = `[\x27\x22]`, `[^\x27\x22]`
	versus := `(` + edge + num + cmp + q + notQ + `*` + q + `|` + q + notQ + `*` + q + cmp + num + `($|[^A-Za-z0-9_.\[]))`
	wrongType := Rule{
		Expression: "!" + expr + ".matches(r'" + versus + "')",
		Message:    "'compares a number with a string: ' + " + expr + ".findAll(r'" + versus + "').join(', ')",
	}
	return []Rule{misspelt, wrongType}
}

// alternatives is a regular expression's alternation of paths, where "*"
// stands for any one name.
func alternatives(paths map[string]bool) string {
	var alts []string
	for _, p := range sortedKeys(paths) {
		alts = append(alts, strings.ReplaceAll(regexp.QuoteMeta(p), `\*`, `[A-Za-z0-9_]+`))
	}
	return strings.Join(alts, "|")
}

// fixed are the declared paths without a key found at run time.
func fixed(d analyzers.Declarations) []string {
	var out []string
	for p := range d {
		if !strings.Contains(p, "*") {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func quoted(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = "'" + s + "'"
	}
	return strings.Join(q, ", ")
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
