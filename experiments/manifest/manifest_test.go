package manifest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSplit(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    []string // each document as String() names it
		wantErr string
	}{
		"one document": {
			in:   "apiVersion: faultline.dev/v1alpha1\nkind: Experiment\nmetadata: {name: a}\n",
			want: []string{"document 1 (Experiment a)"},
		},
		"every document of a kubectl bundle, in order": {
			in:   "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\napiVersion: faultline.dev/v1alpha1\nkind: Experiment\nmetadata: {name: cut}\n",
			want: []string{"document 1 (Deployment web)", "document 2 (Experiment cut)"},
		},
		"empty documents and comments are not counted": {
			in:   "---\n# a comment\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\n---\n",
			want: []string{"document 1 (Service s)"},
		},
		"a JSON document": {
			in:   `{"apiVersion": "faultline.dev/v1alpha1", "kind": "Schedule", "metadata": {"name": "nightly"}}`,
			want: []string{"document 1 (Schedule nightly)"},
		},
		"a document without a kind is still a document": {
			in:   "metadata: {name: x}\n",
			want: []string{"document 1 (no kind x)"},
		},
		"a document that is not an object names its place": {
			in:      "apiVersion: v1\nkind: Service\n---\n- a\n- b\n",
			wantErr: "document 2: want an object",
		},
		"a document that is not YAML names its place": {
			in:      "apiVersion: v1\nkind: Service\n---\nkind: [unclosed\n",
			wantErr: "document 2:",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			docs, err := Split([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range docs {
				got = append(got, d.String())
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("documents %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReadRefusesMoreThanTheAPIServerTakes(t *testing.T) {
	_, err := Read(context.Background(), "/dev/zero", nil)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "/dev/zero") {
		t.Fatalf("error %v, want ErrTooLarge naming the file", err)
	}
	at := filepath.Join(t.TempDir(), "limit.yaml")
	if err := os.WriteFile(at, make([]byte, MaxBytes), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := Read(context.Background(), at, nil); err != nil || len(b) != MaxBytes {
		t.Fatalf("a file of exactly %d bytes: %d bytes, %v", MaxBytes, len(b), err)
	}
}

func TestReadStopsWhenItsContextEndsOnAFIFOWithNoWriter(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Read(ctx, fifo, nil)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Read returned %v before anything was written", err)
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "reading stopped") {
			t.Errorf("error %v, want the read stopped", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read went on after its context ended")
	}
	// Unblock the open, so that the reader leaves before the test ends.
	if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
		f.Close()
	}
}

func TestClip(t *testing.T) {
	short := "spec.faults[0].duration: Invalid value"
	if Clip(short) != short {
		t.Errorf("a short message changed: %q", Clip(short))
	}
	long := strings.Repeat("é", MaxEcho) // two bytes each
	got := Clip(long)
	if len(got) > MaxEcho+40 || !strings.HasSuffix(got, "more bytes)") {
		t.Errorf("clipped to %d bytes, ending %q", len(got), got[len(got)-20:])
	}
	if !strings.HasPrefix(got, strings.Repeat("é", MaxEcho/2)) || strings.Contains(got, "\uFFFD") {
		t.Error("clipped in the middle of a rune")
	}
}

func TestFilesReadsADirectoryAsKubectlDoes(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"b.yaml", "a.json", "c.yml", "notes.txt", "sub/d.yaml", "sub/deeper/e.yaml", "empty/README"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rel := func(paths []string) string {
		var out []string
		for _, p := range paths {
			if r, err := filepath.Rel(dir, p); err == nil && !strings.HasPrefix(r, "..") {
				p = r
			}
			out = append(out, p)
		}
		return strings.Join(out, " ")
	}
	tests := map[string]struct {
		paths     []string
		recursive bool
		want      string // the files, relative to dir
		wantErr   string
	}{
		"a directory is its manifests, in lexical order, not its subdirectories": {
			paths: []string{dir}, want: "a.json b.yaml c.yml",
		},
		"-R reads the subdirectories too": {
			paths: []string{dir}, recursive: true, want: "a.json b.yaml c.yml sub/d.yaml sub/deeper/e.yaml",
		},
		"files and standard input are kept as given, in order": {
			paths: []string{filepath.Join(dir, "notes.txt"), Stdin, filepath.Join(dir, "sub")}, want: "notes.txt - sub/d.yaml",
		},
		"a path that does not exist is left for Read to refuse": {
			paths: []string{filepath.Join(dir, "gone.yaml")}, want: "gone.yaml",
		},
		"a directory with no manifest is refused and names -R": {
			paths: []string{filepath.Join(dir, "empty")}, wantErr: "no .json, .yaml or .yml file in it (-R reads its subdirectories too)",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Files(tc.paths, tc.recursive)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Files: %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rel(got) != tc.want {
				t.Errorf("Files = %q, want %q", rel(got), tc.want)
			}
		})
	}
}
