// Package manifest reads the YAML or JSON files users hand to the CLI, as
// kubectl reads them: every document of every file, with bounds. A file is
// at most MaxBytes (the API server's own limit for one request), a read
// stops when its context ends (Ctrl-C, SIGTERM) even on a FIFO with no
// writer, and what an error echoes of the user's input is clipped.
package manifest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// MaxBytes bounds a file: the API server refuses a request body larger than
// 3 MiB, so no larger manifest could ever be applied.
const MaxBytes = 3 << 20

// ErrTooLarge is returned for a file above MaxBytes.
var ErrTooLarge = errors.New("larger than 3 MiB, the most the API server takes in one request")

// Stdin is the path that names standard input.
const Stdin = "-"

// Read returns the content of the file at path, or of stdin for "-", once
// read whole, or an error when it is larger than MaxBytes or ctx ends
// first. The open happens inside the wait too: opening a FIFO blocks until
// a writer comes.
func Read(ctx context.Context, path string, stdin io.Reader) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		r := stdin
		if path != Stdin {
			f, err := os.Open(path)
			if err != nil {
				done <- result{nil, err}
				return
			}
			defer f.Close()
			r = f
		}
		b, err := io.ReadAll(io.LimitReader(r, MaxBytes+1))
		if err == nil && len(b) > MaxBytes {
			err = ErrTooLarge
		}
		done <- result{b, err}
	}()
	name := path
	if path == Stdin {
		name = "standard input"
	}
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("%s: %w", name, r.err)
		}
		return r.b, nil
	case <-ctx.Done():
		// The reader is left blocked: the process is about to end.
		return nil, fmt.Errorf("%s: reading stopped: %w", name, context.Cause(ctx))
	}
}

// Document is one YAML document of a file.
type Document struct {
	// Index counts from 1, as people count documents in a file.
	Index int
	// Raw is the document as written.
	Raw []byte
	// APIVersion, Kind, Name and Namespace are what it says it is, or
	// empty.
	APIVersion, Kind, Name, Namespace string
}

// String names the document in messages: "document 2 (Experiment probe)".
func (d Document) String() string {
	what := d.Kind
	if what == "" {
		what = "no kind"
	}
	if d.Name != "" {
		what += " " + d.Name
	}
	return fmt.Sprintf("document %d (%s)", d.Index, what)
}

// Group is the API group of the document's apiVersion ("" for the core
// group).
func (d Document) Group() string {
	g, _, found := strings.Cut(d.APIVersion, "/")
	if !found {
		return ""
	}
	return g
}

// Split cuts b into its documents, as kubectl does at lines of "---", and
// leaves out the empty ones (only comments, or nothing). A document that
// is not YAML is an error naming it.
func Split(b []byte) ([]Document, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var docs []Document
	for i := 1; ; i++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, fmt.Errorf("document %d: %w", i, err)
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		var v any
		if err := yaml.Unmarshal(raw, &v); err != nil {
			return docs, fmt.Errorf("document %d: %s", i, Clip(err.Error()))
		}
		if v == nil {
			i-- // an empty document is not counted, as kubectl does not
			continue
		}
		if _, ok := v.(map[string]any); !ok {
			return docs, fmt.Errorf("document %d: want an object with apiVersion and kind, not a %s", i, kindOf(v))
		}
		// Fields of the wrong type here are for the kind's own check to
		// name: the head only routes the document.
		_ = yaml.Unmarshal(raw, &head)
		docs = append(docs, Document{Index: i, Raw: raw, APIVersion: head.APIVersion, Kind: head.Kind, Name: head.Metadata.Name, Namespace: head.Metadata.Namespace})
	}
}

func kindOf(v any) string {
	switch v.(type) {
	case []any:
		return "list"
	case string:
		return "string"
	case float64, int64:
		return "number"
	case bool:
		return "boolean"
	}
	return fmt.Sprintf("%T", v)
}

// MaxEcho bounds how much of one message Clip keeps: an error that quotes
// a 50 MB expression back is no help.
const MaxEcho = 512

// Clip shortens s to MaxEcho bytes (on a rune boundary), saying how much
// it left out.
func Clip(s string) string {
	if len(s) <= MaxEcho {
		return s
	}
	cut := MaxEcho
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d more bytes)", s[:cut], len(s)-cut)
}
