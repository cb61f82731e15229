package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"faultline.dev/faultline/experiments/manifest"
)

// FuzzValidate feeds validate's decoder and checks any bytes, seeded with
// every shipped example. Whatever the input, validate answers (valid, or
// problems that name the file) and never panics, and a document checked
// twice gets the same verdict (no check keeps state). make test runs it
// for a minute (FUZZTIME); go test -run '^$' -fuzz=FuzzValidate
// -fuzztime=10m -fuzzminimizetime=2s ./cmd/faultline/ runs it longer.
func FuzzValidate(f *testing.F) {
	files, err := filepath.Glob("../../deploy/examples/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > manifest.MaxBytes {
			return
		}
		// An input validate never answers is a finding too: the fuzzer
		// itself waits forever on it.
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				panic(fmt.Sprintf("validate still runs after 20s on %q", manifest.Clip(string(b))))
			}
		}()
		dir := t.TempDir()
		path := filepath.Join(dir, "in.yaml")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		failures := validateFile(context.Background(), io.Discard, strings.NewReader(""), path, nil, "")
		for _, msg := range failures {
			if !strings.HasPrefix(msg, path) {
				t.Errorf("a problem that names no file: %q", msg)
			}
		}
		docs, err := manifest.Split(b)
		if err != nil {
			return
		}
		for _, d := range docs {
			ok, problems := checkDocument(d)
			again, problemsAgain := checkDocument(d)
			if (len(problems) == 0) != (len(problemsAgain) == 0) || ok.summary != again.summary {
				t.Errorf("%s: two checks of one document disagree: %v, then %v", d, problems, problemsAgain)
			}
		}
	})
}
