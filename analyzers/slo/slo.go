// Package slo judges measurements against objectives written in CEL, the
// expression language Kubernetes uses for validation, in the manner of Argo
// Rollouts' analysis: each objective is Passed, Failed, Inconclusive (a
// measurement it needs is not there yet) or Error (it does not compile or
// evaluate), and the verdict is the worst of them.
package slo

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
)

// Verdict of an objective or of an experiment.
type Verdict string

const (
	Passed       Verdict = "Passed"
	Failed       Verdict = "Failed"
	Inconclusive Verdict = "Inconclusive"
	Error        Verdict = "Error"
)

// severity orders verdicts: the experiment's verdict is the worst one.
var severity = map[Verdict]int{Passed: 0, Inconclusive: 1, Failed: 2, Error: 3}

// Objective is one SLO.
type Objective struct {
	Name string
	Expr string
	// Abort objectives are evaluated live; a breach aborts the experiment.
	Abort bool
}

// Result is one objective's judgement.
type Result struct {
	Objective
	Verdict Verdict
	Message string
}

// Measurements are grouped by analyzer: {"nodes": {"maxNotReadySeconds":
// 25.3}, "evictions": {"count": 4}}. Values are numbers, strings, booleans,
// lists or maps of them.
type Measurements map[string]map[string]any

// Judge compiles objectives once and evaluates them as often as needed.
type Judge struct {
	env      *cel.Env
	programs []cel.Program
	objs     []Objective
	errs     []error
	// reads are the measurements each objective needs measured.
	reads [][]reference
}

// Analyzers are the top-level names objectives may use.
var Analyzers = []string{"nodes", "evictions", "recovery", "traffic", "prometheus", "oom", "workloads"}

// New compiles the objectives. An objective that does not compile, or is
// not a boolean, is reported by Validate and judged Error.
func New(objs []Objective) (*Judge, error) {
	var opts []cel.EnvOption
	for _, a := range Analyzers {
		opts = append(opts, cel.Variable(a, cel.MapType(cel.StringType, cel.DynType)))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, err
	}
	j := &Judge{env: env, objs: objs}
	for _, o := range objs {
		prg, reads, err := compile(env, o.Expr)
		j.programs = append(j.programs, prg)
		j.reads = append(j.reads, reads)
		j.errs = append(j.errs, err)
	}
	return j, nil
}

func compile(env *cel.Env, expr string) (cel.Program, []reference, error) {
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, nil, iss.Err()
	}
	if t := ast.OutputType(); t != cel.BoolType && t != cel.DynType {
		return nil, nil, fmt.Errorf("the expression is a %s; it must be true or false", t)
	}
	prg, err := env.Program(ast)
	return prg, needed(references(ast.NativeRep())), err
}

// Validate names every objective that does not compile.
func (j *Judge) Validate() error {
	var errs []error
	for i, err := range j.errs {
		if err != nil {
			errs = append(errs, fmt.Errorf("objectives[%d] (%s): expr %q: %w", i, j.objs[i].Name, j.objs[i].Expr, err))
		}
	}
	return errors.Join(errs...)
}

// Evaluate judges every objective (or only the abort ones) against m.
func (j *Judge) Evaluate(m Measurements, abortOnly bool) []Result {
	vars := map[string]any{}
	for _, a := range Analyzers {
		if g, ok := m[a]; ok {
			vars[a] = g
		} else {
			vars[a] = map[string]any{}
		}
	}
	var out []Result
	for i, o := range j.objs {
		if abortOnly && !o.Abort {
			continue
		}
		r := Result{Objective: o}
		switch {
		case j.errs[i] != nil:
			r.Verdict, r.Message = Error, j.errs[i].Error()
		case missing(j.reads[i], vars) != "":
			r.Verdict, r.Message = Inconclusive, "not measured: "+missing(j.reads[i], vars)
		default:
			val, _, err := j.programs[i].Eval(vars)
			switch {
			case err != nil:
				r.Verdict, r.Message = Error, err.Error()
			case val.Type() != types.BoolType:
				r.Verdict, r.Message = Error, fmt.Sprintf("evaluated to %v, not true or false", val)
			case val.Value() == true:
				r.Verdict, r.Message = Passed, "holds: "+explain(o.Expr, vars)
			default:
				r.Verdict, r.Message = Failed, "breached: "+explain(o.Expr, vars)
			}
		}
		out = append(out, r)
	}
	return out
}

// Overall is the worst verdict of the results; no objectives pass.
func Overall(rs []Result) Verdict {
	v := Passed
	for _, r := range rs {
		if severity[r.Verdict] > severity[v] {
			v = r.Verdict
		}
	}
	return v
}

// explain lists the measurements an expression names, with their values,
// so that a verdict says which measurement crossed which bound.
func explain(expr string, vars map[string]any) string {
	var parts []string
	for _, a := range Analyzers {
		g, _ := vars[a].(map[string]any)
		keys := make([]string, 0, len(g))
		for k := range g {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if Names(expr, a+"."+k) {
				parts = append(parts, fmt.Sprintf("%s.%s = %v", a, k, g[k]))
			}
		}
	}
	if len(parts) == 0 {
		return expr
	}
	return expr + " with " + strings.Join(parts, ", ")
}

// Names reports whether expr names the measurement whole: evictions.order
// is not named by evictions.orderKept.
func Names(expr, name string) bool {
	for i := 0; ; {
		j := strings.Index(expr[i:], name)
		if j < 0 {
			return false
		}
		end := i + j + len(name)
		if end == len(expr) || !isIdent(expr[end]) {
			return true
		}
		i = end
	}
}

func isIdent(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}
