package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/report"
)

func TestReportFormat(t *testing.T) {
	tests := map[string]struct {
		flag, path string
		want       report.Format
		err        bool
	}{
		"the flag wins over the extension":           {flag: "junit", path: "out.html", want: report.JUnit},
		"the extension tells when the flag is unset": {path: "out.xml", want: report.JUnit},
		"standard output is Markdown by default":     {path: "-", want: report.Markdown},
		"a file with no extension needs the flag":    {path: "out", err: true},
		"an unknown format is refused":               {flag: "pdf", path: "-", err: true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := reportFormat(tt.flag, tt.path)
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("reportFormat(%q, %q) = %q, %v; want %q, error %v", tt.flag, tt.path, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestWriteReportSaysWhereItWrote(t *testing.T) {
	exp := &v1alpha1.Experiment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "gate"},
		Status: v1alpha1.ExperimentStatus{Phase: v1alpha1.PhasePassed, Verdict: v1alpha1.VerdictPassed}}
	path := filepath.Join(t.TempDir(), "r.json")
	var stdout, log bytes.Buffer
	if err := writeReport(&stdout, &log, path, report.JSON, exp); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), `"apiVersion": "faultline.dev/report/v1"`) {
		t.Errorf("file %s (err %v)", b, err)
	}
	if !strings.Contains(log.String(), path) || stdout.Len() != 0 {
		t.Errorf("log %q stdout %q: want the path on the log only", log.String(), stdout.String())
	}
}
