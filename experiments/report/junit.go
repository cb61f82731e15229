package report

import (
	"encoding/xml"
	"io"
	"sort"
	"strings"
)

// JUnit XML: one testsuite per experiment, one testcase per objective
// (classname the experiment, name the objective), so that CI shows each
// SLO as a test. A Failed objective is a <failure> whose message names the
// measurements and the bound. Inconclusive (not measured) and Error are an
// <error>, not a <skipped>: an objective that could not be judged must not
// look green, as the run's exit code is not 0 for it either; the type
// attribute tells them apart. An experiment whose verdict is Error with no
// objective to carry it (the faults did not all happen) gets one more
// testcase, named "experiment", with that error.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      float64     `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr,omitempty"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

func writeJUnit(w io.Writer, d *document) error {
	all := junitSuites{Name: d.Title}
	for _, r := range d.Reports {
		s := junitSuite{Name: r.Experiment.Namespace + "/" + r.Experiment.Name}
		if r.Start != nil {
			s.Timestamp = r.Start.Format("2006-01-02T15:04:05Z")
			if r.End != nil && r.End.After(*r.Start) {
				s.Time = r.End.Sub(*r.Start).Seconds()
			}
		}
		errored := false
		for _, o := range r.Objectives {
			c := junitCase{Name: o.Name, ClassName: r.Experiment.Name}
			msg := &junitMessage{Message: objectiveMessage(o), Type: o.Verdict, Text: detail(o)}
			switch o.Verdict {
			case "Passed":
				c.SystemOut = objectiveMessage(o)
			case "Failed":
				c.Failure = msg
				s.Failures++
			default:
				c.Error = msg
				s.Errors++
				errored = true
			}
			s.Cases = append(s.Cases, c)
		}
		if r.Verdict == "Error" && !errored {
			s.Cases = append(s.Cases, junitCase{Name: "experiment", ClassName: r.Experiment.Name,
				Error: &junitMessage{Message: r.Message, Type: "Error", Text: r.Message}})
			s.Errors++
		}
		s.Tests = len(s.Cases)
		all.Tests, all.Failures, all.Errors = all.Tests+s.Tests, all.Failures+s.Failures, all.Errors+s.Errors
		all.Suites = append(all.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// objectiveMessage names the measurements and the bound, such as
// "oom.kills == 0 with oom.kills = 1": the judge's message says so, else
// it is made from the expression and what it read.
func objectiveMessage(o Objective) string {
	if o.Message != "" {
		return o.Message
	}
	if len(o.Measured) == 0 {
		return o.Expr
	}
	return o.Expr + " with " + measured(o)
}

func measured(o Objective) string {
	keys := make([]string, 0, len(o.Measured))
	for k := range o.Measured {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " = " + o.Measured[k]
	}
	return strings.Join(parts, ", ")
}

func detail(o Objective) string {
	s := "expr: " + o.Expr + "\nverdict: " + o.Verdict
	if len(o.Measured) > 0 {
		s += "\nmeasured: " + measured(o)
	}
	return s
}
