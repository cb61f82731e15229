package prometheus

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"k8s.io/utils/clock"
)

// Query is a PromQL measurement of your own, judged by CEL conditions over
// result (a number for a scalar, a list of numbers for a vector) and
// baseline (result at the end of the baseline window), as Argo Rollouts'
// Prometheus metrics are. Each window is also asked as a range query, so
// that objectives can read what the query did all through the fault.
type Query struct {
	// Name is how objectives read it: prometheus.queries.NAME.
	Name string
	// Query in PromQL, evaluated at each measurement's instant.
	Query string
	// SuccessCondition and FailureCondition are CEL; either may be empty.
	SuccessCondition, FailureCondition string
	// FailureLimit is how many failed measurements are tolerated.
	FailureLimit int
	// Interval between measurements; DefaultInterval when 0.
	Interval time.Duration
}

// DefaultInterval between a query's measurements.
const DefaultInterval = 10 * time.Second

// consecutiveErrorLimit is how many errors in a row a query tolerates, as
// Argo Rollouts' default.
const consecutiveErrorLimit = 4

// Phase of a query.
type Phase string

const (
	Running    Phase = "Running"
	Successful Phase = "Successful"
	Failed     Phase = "Failed"
	Error      Phase = "Error"
)

var queryName = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{0,62}$`)

// conditionEnv is where conditions compile: result and baseline are a
// number or a list of numbers.
var conditionEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(cel.Variable("result", cel.DynType), cel.Variable("baseline", cel.DynType))
})

// condition is a compiled condition.
type condition struct {
	prg cel.Program
	// usesBaseline: the condition cannot be judged before the baseline
	// window ends.
	usesBaseline bool
}

func compileCondition(expr string) (*condition, error) {
	if expr == "" {
		return nil, nil
	}
	env, err := conditionEnv()
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if t := ast.OutputType(); t != cel.BoolType && t != cel.DynType {
		return nil, fmt.Errorf("the expression is a %s; it must be true or false", t)
	}
	prg, err := env.Program(ast)
	if err != nil {
		return nil, err
	}
	c := &condition{prg: prg}
	for _, ref := range ast.NativeRep().ReferenceMap() {
		c.usesBaseline = c.usesBaseline || ref.Name == "baseline"
	}
	return c, nil
}

func (c *condition) eval(vars map[string]any) (bool, error) {
	v, _, err := c.prg.Eval(vars)
	if err != nil {
		return false, err
	}
	if v.Type() != types.BoolType {
		return false, fmt.Errorf("evaluated to %v, not true or false", v)
	}
	return v.Value() == true, nil
}

// query is a Query being measured.
type query struct {
	Query
	success, failure *condition

	mu sync.Mutex
	// result and baseline are float64 or []float64; nil until measured.
	result, baseline                           any
	measurements, failed, errors, errorsInARow int
	lastError                                  string
	phase                                      Phase
	// windows: the query over each window as a range query, summed up.
	windows map[string]map[string]any
}

// newQuery checks q, naming the field at fault as queries[i].FIELD.
func newQuery(i int, q Query) (*query, error) {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("queries[%d].%s", i, fmt.Sprintf(format, a...)))
	}
	if !queryName.MatchString(q.Name) {
		bad("name: must be a letter then up to 62 letters, digits or _, got %q", q.Name)
	}
	if q.Query == "" {
		bad("query: must not be empty")
	}
	if q.FailureLimit < 0 {
		bad("failureLimit: must not be negative, got %d", q.FailureLimit)
	}
	if q.Interval < 0 {
		bad("interval: must not be negative, got %s", q.Interval)
	}
	if q.Interval == 0 {
		q.Interval = DefaultInterval
	}
	success, err := compileCondition(q.SuccessCondition)
	if err != nil {
		bad("successCondition: %q: %v", q.SuccessCondition, err)
	}
	failure, err := compileCondition(q.FailureCondition)
	if err != nil {
		bad("failureCondition: %q: %v", q.FailureCondition, err)
	}
	return &query{Query: q, success: success, failure: failure, phase: Running}, errors.Join(errs...)
}

// run measures the query at once, then every Interval, at the end of the
// baseline window (kept as baseline) and at the end of the recovery
// window, after which the query is done. It returns early when ctx ends.
func (q *query) run(ctx context.Context, clk clock.WithTicker, api querier, marks <-chan mark) {
	tick := clk.NewTicker(q.Interval)
	defer tick.Stop()
	var at [numBoundaries]time.Time
	at[BaselineStart] = clk.Now()
	q.sample(ctx, api, at[BaselineStart], false)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
			q.sample(ctx, api, clk.Now(), false)
		case m := <-marks:
			if at[m.b].IsZero() || m.b == BaselineStart {
				at[m.b] = m.at
			}
			for _, w := range windows {
				if w.to == m.b && !at[w.from].IsZero() {
					q.window(ctx, api, w.name, at[w.from], m.at)
				}
			}
			switch m.b {
			case FaultStart:
				q.sample(ctx, api, m.at, true)
			case RecoveryEnd:
				q.sample(ctx, api, m.at, false)
				q.finish()
				return
			}
		}
	}
}

// window runs the query over a window as a range query, one point per
// Interval, and keeps the lowest, highest and mean of every series' points
// (and how many there were): what the query did all through the fault,
// not only at the instants it was judged.
func (q *query) window(ctx context.Context, api querier, name string, from, to time.Time) {
	qctx, cancel := context.WithTimeout(ctx, requestTimeout)
	v, _, _, err := api.QueryRange(qctx, q.Query.Query, promv1.Range{Start: from, End: to, Step: q.Interval})
	cancel()
	if ctx.Err() != nil {
		return
	}
	w := map[string]any{}
	if err == nil {
		err = summarize(v, w)
	}
	if err != nil {
		w["error"] = err.Error()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.windows == nil {
		q.windows = map[string]map[string]any{}
	}
	q.windows[name] = w
}

// summarize puts min, max, mean and points of a range query's answer (a
// matrix) into w; NaN points (an empty histogram's quantile) are left out.
func summarize(v model.Value, w map[string]any) error {
	m, ok := v.(model.Matrix)
	if !ok {
		return fmt.Errorf("a range query returned a %v, not a matrix", v.Type())
	}
	n, sum := 0, 0.0
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range m {
		for _, p := range s.Values {
			f := float64(p.Value)
			if math.IsNaN(f) {
				continue
			}
			n++
			sum += f
			lo, hi = min(lo, f), max(hi, f)
		}
	}
	w["points"] = int64(n)
	if n > 0 {
		w["min"], w["max"], w["mean"] = lo, hi, sum/float64(n)
	}
	return nil
}

// sample runs the query at the instant at and judges its result.
func (q *query) sample(ctx context.Context, api querier, at time.Time, asBaseline bool) {
	if q.done() {
		return
	}
	qctx, cancel := context.WithTimeout(ctx, requestTimeout)
	v, _, _, err := api.Query(qctx, q.Query.Query, at)
	cancel()
	if ctx.Err() != nil {
		return // stopped: not the query's fault
	}
	var res any
	if err == nil {
		res, err = value(v)
	}
	q.record(res, err, asBaseline)
}

// value is a scalar as a number, an instant vector as a list of numbers in
// the order of their label sets, so that result[0] is always the same
// series.
func value(v model.Value) (any, error) {
	switch v := v.(type) {
	case *model.Scalar:
		return float64(v.Value), nil
	case model.Vector:
		vec := slices.Clone(v)
		slices.SortFunc(vec, func(a, b *model.Sample) int {
			switch {
			case a.Metric.Before(b.Metric):
				return -1
			case b.Metric.Before(a.Metric):
				return 1
			}
			return 0
		})
		out := make([]float64, len(vec))
		for i, s := range vec {
			out[i] = float64(s.Value)
		}
		return out, nil
	case nil:
		return nil, errors.New("the query returned nothing")
	}
	return nil, fmt.Errorf("the query returns a %s; conditions take a scalar or an instant vector", v.Type())
}

func (q *query) done() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.phase != Running
}

// record counts a measurement, as Argo Rollouts does: a failure condition
// that holds fails it; else a success condition decides; a query or
// condition error is an error. More than FailureLimit failures end the
// query Failed, more than consecutiveErrorLimit errors in a row end it in
// Error. A measurement whose conditions read baseline before there is one
// is kept as result but not judged.
func (q *query) record(res any, err error, asBaseline bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.phase != Running {
		return
	}
	var failed bool
	if err == nil {
		q.result = res
		if asBaseline {
			q.baseline = res
		}
		if q.needsBaseline() && q.baseline == nil {
			return
		}
		failed, err = q.judge(res)
	}
	q.measurements++
	switch {
	case err != nil:
		q.errors++
		q.errorsInARow++
		q.lastError = err.Error()
		if q.errorsInARow > consecutiveErrorLimit {
			q.phase = Error
		}
	case failed:
		q.errorsInARow = 0
		q.failed++
		if q.failed > q.FailureLimit {
			q.phase = Failed
		}
	default:
		q.errorsInARow = 0
	}
}

func (q *query) needsBaseline() bool {
	return (q.success != nil && q.success.usesBaseline) || (q.failure != nil && q.failure.usesBaseline)
}

// judge tells whether a measurement failed.
func (q *query) judge(res any) (bool, error) {
	vars := map[string]any{"result": res}
	if q.baseline != nil {
		vars["baseline"] = q.baseline
	}
	if q.failure != nil {
		if f, err := q.failure.eval(vars); err != nil || f {
			return f, err
		}
	}
	if q.success != nil {
		ok, err := q.success.eval(vars)
		return !ok, err
	}
	return false, nil
}

// finish ends a query still running: Successful if any of its
// measurements was judged, Error if none was.
func (q *query) finish() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.phase != Running {
		return
	}
	q.phase = Successful
	if q.measurements == q.errors {
		q.phase = Error
		if q.lastError == "" {
			q.lastError = "no measurement was judged"
		}
	}
}

// values are the query as objectives read it.
func (q *query) values() map[string]any {
	q.mu.Lock()
	defer q.mu.Unlock()
	m := map[string]any{
		"measurements": int64(q.measurements),
		"failed":       int64(q.failed),
		"errors":       int64(q.errors),
		"phase":        string(q.phase),
	}
	if q.result != nil {
		m["result"] = q.result
	}
	if q.baseline != nil {
		m["baseline"] = q.baseline
	}
	if q.lastError != "" {
		m["error"] = q.lastError
	}
	if len(q.windows) > 0 {
		ws := map[string]any{}
		for name, w := range q.windows {
			ws[name] = maps.Clone(w)
		}
		m["windows"] = ws
	}
	return m
}
