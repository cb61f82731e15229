package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestMarkdownGolden(t *testing.T) {
	passed := experiment("steady", withPartition("blip", 0, 10),
		withMeasurement("nodes.maxNotReadySeconds", "0"),
		withObjective("node stays Ready", "nodes.maxNotReadySeconds == 0", v1alpha1.VerdictPassed, "nodes.maxNotReadySeconds == 0 with nodes.maxNotReadySeconds = 0"),
		withVerdict(v1alpha1.PhasePassed, v1alpha1.VerdictPassed, "all 1 objective(s) held"))
	tests := map[string]struct {
		golden string
		write  func(*bytes.Buffer) error
	}{
		"a failed experiment shows its verdict, objectives and key figures": {"failed.md.golden", func(b *bytes.Buffer) error {
			return Write(b, Markdown, FromExperiment(partitioned()))
		}},
		"a gameday shows a summary table, then each step": {"gameday.md.golden", func(b *bytes.Buffer) error {
			return WriteGameday(b, Markdown, NewGameday("zone failure", Step{"warm-up", FromExperiment(passed)}, Step{"partition", FromExperiment(partitioned())}))
		}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var got bytes.Buffer
			if err := tt.write(&got); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("Markdown differs from %s (go test -update rewrites it):\n%s", path, got.String())
			}
			// Maps are iterated in random order: a second rendering must
			// be the same bytes.
			var again bytes.Buffer
			if err := tt.write(&again); err != nil || !bytes.Equal(again.Bytes(), got.Bytes()) {
				t.Errorf("a second rendering differs (err %v)", err)
			}
		})
	}
}
