package sandbox

import (
	"testing"
	"time"
)

func TestUpTakesTheFreeIndexReleasedLongestAgo(t *testing.T) {
	now := time.Now()
	tests := map[string]struct {
		free     []int
		released map[int]time.Time
		want     int
	}{
		"with nothing released, the lowest free index":       {free: []int{1, 2, 3}, want: 1},
		"an index never released before one released lately": {free: []int{1, 2}, released: map[int]time.Time{1: now}, want: 2},
		"of two released, the one released first":            {free: []int{1, 2}, released: map[int]time.Time{1: now, 2: now.Add(-time.Minute)}, want: 2},
		"the only free index, however recent":                {free: []int{4}, released: map[int]time.Time{4: now}, want: 4},
		"none free":                                          {want: -1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := releasedLongestAgo(tc.free, tc.released); got != tc.want {
				t.Errorf("index %d, want %d", got, tc.want)
			}
		})
	}
}

func TestTheReleasedRecordSurvivesARoundTrip(t *testing.T) {
	root := t.TempDir()
	at := time.Now().Truncate(time.Second)
	if err := markReleased(root, 3, at); err != nil {
		t.Fatal(err)
	}
	if err := markReleased(root, 5, at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	r := readReleased(root)
	if !r[3].Equal(at) || !r[5].Equal(at.Add(time.Second)) || len(r) != 2 {
		t.Errorf("read back %v", r)
	}
	if !IsBookkeeping(releasedFile) || !IsBookkeeping(".lock") || IsBookkeeping("test") {
		t.Error("the root's own files are not told from sandboxes")
	}
}
