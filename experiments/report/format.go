package report

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// Format is a rendering of a report.
type Format string

const (
	JSON     Format = "json"
	Markdown Format = "md"
	JUnit    Format = "junit"
	HTML     Format = "html"
)

// Formats are every format, for help texts.
var Formats = []Format{HTML, Markdown, JUnit, JSON}

// ParseFormat reads a format by name, with the usual aliases.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "json":
		return JSON, nil
	case "md", "markdown":
		return Markdown, nil
	case "junit", "xml":
		return JUnit, nil
	case "html", "htm":
		return HTML, nil
	}
	return "", fmt.Errorf("unknown report format %q: use html, md, junit or json", s)
}

// FormatOf guesses the format from a file's extension.
func FormatOf(path string) (Format, error) {
	ext := strings.TrimPrefix(filepath.Ext(path), ".")
	if ext == "" {
		return "", fmt.Errorf("%s: no extension to tell the report format by: give it one (.html, .md, .xml, .json) or a format", path)
	}
	return ParseFormat(ext)
}

// Write renders one experiment's report.
func Write(w io.Writer, f Format, r *Report) error {
	return write(w, f, r, &document{Title: "faultline: " + r.Experiment.Name, Verdict: r.Verdict, Reports: []*Report{r}})
}

// WriteGameday renders a gameday's report.
func WriteGameday(w io.Writer, f Format, g *Gameday) error {
	return write(w, f, g, &document{Title: "faultline gameday: " + g.Name, Verdict: g.Verdict, Summary: g.Summary, Reports: g.Reports})
}

// document is what the Markdown, JUnit and HTML renderings share: a
// single report is a gameday of one step with no summary.
type document struct {
	Title   string
	Verdict string
	Summary []Row
	Reports []*Report
}

func write(w io.Writer, f Format, model any, d *document) error {
	switch f {
	case JSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(model)
	case Markdown:
		return writeMarkdown(w, d)
	case JUnit:
		return writeJUnit(w, d)
	case HTML:
		return writeHTML(w, d)
	}
	return fmt.Errorf("unknown report format %q", f)
}

// Read decodes a JSON experiment report, refusing other versions.
func Read(r io.Reader) (*Report, error) {
	var rep Report
	if err := json.NewDecoder(r).Decode(&rep); err != nil {
		return nil, err
	}
	if rep.APIVersion != APIVersion || rep.Kind != KindExperiment {
		return nil, fmt.Errorf("not a %s %s but %s %s", APIVersion, KindExperiment, rep.APIVersion, rep.Kind)
	}
	return &rep, nil
}
