package measures_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"faultline.dev/faultline/analyzers"
	"faultline.dev/faultline/analyzers/evictions"
	"faultline.dev/faultline/analyzers/measures"
	"faultline.dev/faultline/analyzers/nodes"
	"faultline.dev/faultline/analyzers/oomkills"
	"faultline.dev/faultline/analyzers/traffic"
	"faultline.dev/faultline/analyzers/workloads"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// What each analyzer returns is what it declares: every value measured is
// declared, of its kind, and every fixed path declared under its name is
// measured. A measurement added to Measure without its declaration, or a
// declaration left behind by a rename, fails here, not in a user's verdict.
func TestEveryAnalyzerMeasuresWhatItDeclares(t *testing.T) {
	tests := map[string]struct {
		provider func(t *testing.T) analyzers.Provider
	}{
		"nodes":     {provider: func(*testing.T) analyzers.Provider { return nodes.New() }},
		"evictions": {provider: func(*testing.T) analyzers.Provider { return evictions.New(t0) }},
		"oom kills": {provider: func(*testing.T) analyzers.Provider { return oomkills.New(t0) }},
		"workloads": {provider: func(*testing.T) analyzers.Provider { return workloads.New(t0) }},
		"traffic, with its windows, after real requests": {provider: func(t *testing.T) analyzers.Provider {
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
			t.Cleanup(s.Close)
			now := time.Now()
			windows := []traffic.Window{{Name: "baseline", Start: now}, {Name: "fault", Start: now.Add(150 * time.Millisecond)}, {Name: "recovery", Start: now.Add(300 * time.Millisecond)}}
			p, err := traffic.New(traffic.Config{URL: s.URL, Rate: 50, Windows: windows}, clocktesting.NewFakeClock(now))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			_ = p.Run(ctx)
			return p
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := tc.provider(t)
			got := p.Measure(t0.Add(time.Minute))
			for _, bad := range measures.All.Check(p.Name(), got) {
				t.Errorf("measured but not declared as measured: %s", bad)
			}
			for _, m := range measures.All.Sorted() {
				path, ok := strings.CutPrefix(m.Path, p.Name()+".")
				if !ok || strings.Contains(path, "*") || m.Sometimes {
					continue
				}
				if !measured(got, strings.Split(path, ".")) {
					t.Errorf("declared but not measured: %s", m.Path)
				}
			}
		})
	}
}

func measured(m map[string]any, path []string) bool {
	v, ok := m[path[0]]
	if !ok {
		return false
	}
	if len(path) == 1 {
		return true
	}
	sub, ok := v.(map[string]any)
	return ok && measured(sub, path[1:])
}
