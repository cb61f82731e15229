package report

// Gameday is several experiments run in order (a scenario's steps), with
// a summary table first.
type Gameday struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	// Verdict is the worst of the steps'.
	Verdict string `json:"verdict"`
	// Summary has one row per step, in order.
	Summary []Row `json:"summary"`
	// Reports of the steps, in order.
	Reports []*Report `json:"reports"`
}

// Step is one step of a gameday and its experiment's report.
type Step struct {
	Name   string
	Report *Report
}

// Row is a step's line in the summary.
type Row struct {
	Step       string   `json:"step"`
	Experiment string   `json:"experiment"`
	Verdict    string   `json:"verdict"`
	Message    string   `json:"message,omitempty"`
	Figures    []Figure `json:"figures,omitempty"`
}

// severity orders verdicts as the SLO judge does: the worst wins.
var severity = map[string]int{"Passed": 0, "Inconclusive": 1, "Failed": 2, "Error": 3}

// NewGameday builds the gameday report of the steps, in their order.
func NewGameday(name string, steps ...Step) *Gameday {
	g := &Gameday{APIVersion: APIVersion, Kind: KindGameday, Name: name, Verdict: "Passed"}
	for _, s := range steps {
		r := s.Report
		g.Reports = append(g.Reports, r)
		g.Summary = append(g.Summary, Row{Step: s.Name, Experiment: r.Experiment.Name, Verdict: r.Verdict, Message: r.Message, Figures: r.Figures()})
		if severity[r.Verdict] > severity[g.Verdict] {
			g.Verdict = r.Verdict
		}
	}
	return g
}
