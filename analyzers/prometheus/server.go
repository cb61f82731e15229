package prometheus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// querier is what the analyzer needs of a Prometheus server's API.
type querier interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error)
	QueryRange(ctx context.Context, query string, r promv1.Range, opts ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error)
}

// server measures a window by instant queries at its end over its length:
// the server keeps the history, so a boundary is only an instant.
type server struct {
	api querier

	mu sync.Mutex
	at [numBoundaries]time.Time
}

func (s *server) mark(_ context.Context, b Boundary, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at[b] = at
}

// window queries each built-in over exactly the window, to the
// millisecond. increase() extrapolates to the window's edges, so counts can
// be fractional.
func (s *server) window(ctx context.Context, from, to Boundary) (map[string]any, error) {
	s.mu.Lock()
	start, end := s.at[from], s.at[to]
	s.mu.Unlock()
	rng := promRange(start, end)
	out := map[string]any{}
	var errs []error
	for _, b := range builtins {
		v, err := s.scalar(ctx, b.promQL(rng), end)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", b.name, err))
		case !math.IsNaN(v):
			out[b.name] = v
		}
	}
	return out, errors.Join(errs...)
}

// promRange is the window from start to end as a PromQL range, in whole
// milliseconds and never longer than the window. Rounded up to whole
// seconds, a recovery window reached up to a second into the fault: one
// scrape in five fell there, and the last slowed fsyncs then counted as
// the recovery's.
func promRange(start, end time.Time) string {
	return fmt.Sprintf("%dms", max(end.Sub(start).Milliseconds(), 1))
}

// scalar runs a query whose answer is one sample; NaN when there is none
// (no such series).
func (s *server) scalar(ctx context.Context, q string, at time.Time) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	v, _, _, err := s.api.Query(ctx, q, at)
	if err != nil {
		return 0, err
	}
	vec, ok := v.(model.Vector)
	if !ok || len(vec) > 1 {
		return 0, fmt.Errorf("%s: want at most one sample, got %v", q, v)
	}
	if len(vec) == 0 {
		return math.NaN(), nil
	}
	return float64(vec[0].Value), nil
}
