package slo

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	celref "github.com/google/cel-go/common/types/ref"

	"faultline.dev/faultline/analyzers"
)

const anyKey = analyzers.AnyKey

// Check type-checks every objective that compiles against the declared
// measurements: a path that names no measurement is refused with the
// nearest one, and a measurement compared with a literal of another kind,
// or used as true or false when it is not, is refused too.
func (j *Judge) Check(d analyzers.Declarations) error {
	var errs []error
	for i, o := range j.objs {
		if j.errs[i] != nil {
			continue // Validate says what does not compile
		}
		checked, iss := j.env.Compile(o.Expr)
		if iss.Err() != nil {
			continue
		}
		for _, e := range checkAST(checked.NativeRep(), d) {
			errs = append(errs, fmt.Errorf("objectives[%d] (%s): %s", i, o.Name, e))
		}
	}
	return errors.Join(errs...)
}

// reference is a measurement an expression reads: the node at the top of
// its chain of selections and indexes from an analyzer's name.
type reference struct {
	top      ast.NavigableExpr
	segments []string
}

func (r reference) String() string {
	var b strings.Builder
	for i, s := range r.segments {
		switch {
		case i == 0:
			b.WriteString(s)
		case s == anyKey:
			b.WriteString("[…]")
		case !isName(s):
			fmt.Fprintf(&b, "[%q]", s)
		default:
			b.WriteString("." + s)
		}
	}
	return b.String()
}

// isName says whether s can follow a dot in CEL.
func isName(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isIdent(s[i]) || i == 0 && s[i] >= '0' && s[i] <= '9' {
			return false
		}
	}
	return s != ""
}

// references finds every measurement the expression reads.
func references(a *ast.AST) []reference {
	var out []reference
	for _, n := range ast.MatchDescendants(ast.NavigateAST(a), ast.KindMatcher(ast.IdentKind)) {
		if !slices.Contains(Analyzers, n.AsIdent()) {
			continue
		}
		ref := reference{top: n, segments: []string{n.AsIdent()}}
		for {
			p, ok := ref.top.Parent()
			if !ok {
				break
			}
			switch {
			case p.Kind() == ast.SelectKind && p.AsSelect().Operand().ID() == ref.top.ID():
				ref.segments = append(ref.segments, p.AsSelect().FieldName())
			case p.Kind() == ast.CallKind && p.AsCall().FunctionName() == operators.Index && p.AsCall().Args()[0].ID() == ref.top.ID():
				key := anyKey
				if k := p.AsCall().Args()[1]; k.Kind() == ast.LiteralKind {
					key = fmt.Sprint(k.AsLiteral().Value())
				}
				ref.segments = append(ref.segments, key)
			default:
				out = append(out, ref)
				ref.top = nil
			}
			if ref.top == nil {
				break
			}
			ref.top = p
		}
		if ref.top != nil {
			out = append(out, ref)
		}
	}
	return out
}

// needed are the references an objective cannot be judged without: not
// those it only tests with has().
func needed(refs []reference) []reference {
	var out []reference
	for _, r := range refs {
		if r.top.Kind() == ast.SelectKind && r.top.AsSelect().IsTestOnly() {
			continue
		}
		out = append(out, r)
	}
	return out
}

// missing names the first needed measurement that is not in vars, or "".
// A key the objective computes is not known before it runs: it counts as
// there.
func missing(refs []reference, vars map[string]any) string {
	for _, r := range refs {
		var v any = vars
		for _, s := range r.segments {
			if s == anyKey {
				break
			}
			m, ok := v.(map[string]any)
			if !ok {
				break // a list or a value: CEL reads it from here on
			}
			if v, ok = m[s]; !ok {
				return r.String()
			}
		}
	}
	return ""
}

func checkAST(a *ast.AST, d analyzers.Declarations) []string {
	var problems []string
	kinds := map[int64]analyzers.Measurement{}
	for _, ref := range references(a) {
		m, ok := d.Lookup(ref.segments)
		if !ok {
			near := strings.ReplaceAll(d.Nearest(strings.Join(ref.segments, ".")), ".*", "[KEY]")
			problems = append(problems, fmt.Sprintf("%s is not a measurement; did you mean %s? (faultline validate --list-measurements lists them)", ref, near))
			continue
		}
		if ref.top.Kind() == ast.SelectKind && ref.top.AsSelect().IsTestOnly() {
			continue // has(x.y) is true or false, whatever y is
		}
		kinds[ref.top.ID()] = m
	}
	comparisons := []string{operators.Equals, operators.NotEquals, operators.Less, operators.LessEquals, operators.Greater, operators.GreaterEquals}
	logic := []string{operators.LogicalAnd, operators.LogicalOr, operators.LogicalNot}
	for _, c := range ast.MatchDescendants(ast.NavigateAST(a), ast.KindMatcher(ast.CallKind)) {
		call := c.AsCall()
		args := call.Args()
		switch {
		case slices.Contains(comparisons, call.FunctionName()) && len(args) == 2:
			for i, arg := range args {
				m, ok := kinds[arg.ID()]
				other := args[1-i]
				if !ok || other.Kind() != ast.LiteralKind {
					continue
				}
				if lit := literalKind(other.AsLiteral().Type()); lit != "" && lit != m.Kind && (m.Kind == analyzers.Number || m.Kind == analyzers.Bool || m.Kind == analyzers.String) {
					problems = append(problems, fmt.Sprintf("%s is a %s; it cannot be compared with the %s %v", m.Path, m.Kind, lit, other.AsLiteral().Value()))
				}
			}
		case slices.Contains(logic, call.FunctionName()):
			for _, arg := range args {
				if m, ok := kinds[arg.ID()]; ok && m.Kind != analyzers.Bool {
					problems = append(problems, fmt.Sprintf("%s is a %s, not true or false", m.Path, m.Kind))
				}
			}
		}
	}
	return problems
}

func literalKind(t celref.Type) analyzers.Kind {
	switch t {
	case types.IntType, types.UintType, types.DoubleType:
		return analyzers.Number
	case types.StringType:
		return analyzers.String
	case types.BoolType:
		return analyzers.Bool
	}
	return ""
}
