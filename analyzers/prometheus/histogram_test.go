package prometheus

import (
	"math"
	"testing"
)

func TestQuantileIsHistogramQuantiles(t *testing.T) {
	tests := map[string]struct {
		h    histogram
		want float64
	}{
		"it interpolates linearly inside the bucket holding the rank": {
			h:    histogram{0.1: 50, 0.2: 90, 0.4: 100, inf: 100},
			want: 0.2 + 0.2*(99-90)/10,
		},
		"the first bucket starts at 0": {
			h:    histogram{1: 100, inf: 100},
			want: 0.99,
		},
		"a rank in the +Inf bucket is the highest finite bound": {
			h:    histogram{0.1: 10, 1: 50, inf: 100},
			want: 1,
		},
		"a first bucket bound not above 0 is answered as is": {
			h:    histogram{-1: 100, 1: 100, inf: 100},
			want: -1,
		},
		"summed buckets that dip take the highest count so far": {
			h:    histogram{0.1: 60, 0.2: 50, 0.4: 100, inf: 100},
			want: 0.2 + 0.2*(99-60)/40,
		},
		"no observations have no quantile": {
			h:    histogram{0.1: 0, inf: 0},
			want: math.NaN(),
		},
		"buckets without +Inf have no quantile": {
			h:    histogram{0.1: 5, 1: 10},
			want: math.NaN(),
		},
		"a lone +Inf bucket has no quantile": {
			h:    histogram{inf: 10},
			want: math.NaN(),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := tc.h.quantile(0.99)
			if math.IsNaN(got) != math.IsNaN(tc.want) || math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("quantile(0.99) = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSinceDifferencesSnapshots(t *testing.T) {
	tests := map[string]struct {
		earlier, later, want histogram
	}{
		"the counts are differenced bucket by bucket": {
			earlier: histogram{0.1: 10, 1: 20, inf: 20},
			later:   histogram{0.1: 15, 1: 40, inf: 41},
			want:    histogram{0.1: 5, 1: 20, inf: 21},
		},
		"a count that went down is a reset: the later counts are the increase": {
			earlier: histogram{0.1: 10, 1: 20, inf: 20},
			later:   histogram{0.1: 3, 1: 4, inf: 4},
			want:    histogram{0.1: 3, 1: 4, inf: 4},
		},
		"buckets that changed are a reset": {
			earlier: histogram{0.1: 1, 1: 2, inf: 2},
			later:   histogram{0.5: 3, 1: 4, inf: 4},
			want:    histogram{0.5: 3, 1: 4, inf: 4},
		},
		"a series that was not there started in between, from 0": {
			earlier: nil,
			later:   histogram{0.1: 3, inf: 4},
			want:    histogram{0.1: 3, inf: 4},
		},
		"a quiet series observed nothing": {
			earlier: histogram{0.1: 3, inf: 4},
			later:   histogram{0.1: 3, inf: 4},
			want:    histogram{0.1: 0, inf: 0},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := tc.later.since(tc.earlier)
			if len(got) != len(tc.want) {
				t.Fatalf("since = %v, want %v", got, tc.want)
			}
			for le, n := range tc.want {
				if got[le] != n {
					t.Fatalf("since = %v, want %v", got, tc.want)
				}
			}
		})
	}
}
