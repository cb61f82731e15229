package prometheus

import (
	"math"
	"slices"
)

// histogram is a classic Prometheus histogram: cumulative counts by upper
// bound ("le"), +Inf included, whose +Inf count is the number of
// observations. A counter is kept as a histogram of that one bucket, so
// that both are differenced and summed alike.
type histogram map[float64]float64

var inf = math.Inf(1)

// since is what h observed after earlier, a snapshot of the same series:
// the difference of the counts, or h itself when the series restarted in
// between (a count went down, or the buckets changed). With only two
// snapshots the later counts are the best estimate of a reset's increase.
func (h histogram) since(earlier histogram) histogram {
	if len(h) != len(earlier) {
		return h
	}
	out := make(histogram, len(h))
	for le, n := range h {
		e, ok := earlier[le]
		if !ok || n < e {
			return h
		}
		out[le] = n - e
	}
	return out
}

// add adds o's counts to h's, bucket by bucket, as sum by (le) does.
func (h histogram) add(o histogram) {
	for le, n := range o {
		h[le] += n
	}
}

// quantile is histogram_quantile(q, h) as Prometheus computes it: the
// bucket holding the q-th observation, interpolated linearly inside it
// from 0 for the first bucket; in the +Inf bucket, the highest finite
// bound. NaN without observations or without a +Inf bucket.
func (h histogram) quantile(q float64) float64 {
	bounds := make([]float64, 0, len(h))
	for le := range h {
		bounds = append(bounds, le)
	}
	slices.Sort(bounds)
	n := len(bounds)
	if n < 2 || bounds[n-1] != inf || h[inf] == 0 {
		return math.NaN()
	}
	// Summed series whose buckets differ can make the counts dip: Prometheus
	// takes the highest count so far.
	counts := make([]float64, n)
	for i, le := range bounds {
		counts[i] = h[le]
		if i > 0 {
			counts[i] = max(counts[i], counts[i-1])
		}
	}
	rank := q * counts[n-1]
	i, _ := slices.BinarySearch(counts, rank)
	switch {
	case i == n-1:
		return bounds[n-2]
	case i == 0 && bounds[0] <= 0:
		return bounds[0]
	}
	start, below := 0.0, 0.0
	if i > 0 {
		start, below = bounds[i-1], counts[i-1]
	}
	return start + (bounds[i]-start)*(rank-below)/(counts[i]-below)
}
