package report

import (
	"io"
	"strings"
	"text/template"
)

// The Markdown is short, for a pull request comment: the verdict, the
// objectives and the key figures; the HTML and JSON carry the rest.
var markdownTemplate = template.Must(template.New("md").Funcs(template.FuncMap{"cell": cell, "icon": icon, "said": objectiveMessage}).Parse(
	`{{define "report"}}### {{icon .Verdict}} {{.Experiment.Name}}: {{.Verdict}}

{{if .Message}}{{cell .Message}}

{{end}}{{if .Objectives}}| Objective | Verdict | Detail |
|---|---|---|
{{range .Objectives}}| {{cell .Name}} | {{icon .Verdict}} {{.Verdict}} | {{cell (said .)}} |
{{end}}
{{end}}{{with .Figures}}| Key figure | Value |
|---|---|
{{range .}}| ` + "`{{.Name}}`" + ` | {{cell .Value}} |
{{end}}
{{end}}{{if .Notes}}{{range .Notes}}> {{cell .}}
{{end}}
{{end}}{{end}}{{if .Summary}}## {{icon .Verdict}} {{cell .Title}}: {{.Verdict}}

| Step | Experiment | Verdict | Key figures |
|---|---|---|---|
{{range .Summary}}| {{cell .Step}} | {{cell .Experiment}} | {{icon .Verdict}} {{.Verdict}} | {{range $i, $f := .Figures}}{{if $i}}, {{end}}{{$f.Name}}={{cell $f.Value}}{{end}} |
{{end}}
{{end}}{{range .Reports}}{{template "report" .}}{{end}}`))

func writeMarkdown(w io.Writer, d *document) error {
	var b strings.Builder
	if err := markdownTemplate.Execute(&b, d); err != nil {
		return err
	}
	_, err := io.WriteString(w, strings.TrimRight(b.String(), "\n")+"\n")
	return err
}

// cell keeps text on one table row: pipes would split the cell, newlines
// the row.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\r", "", "\n", "<br>").Replace(s)
}

func icon(verdict string) string {
	switch verdict {
	case "Passed":
		return "✅"
	case "Failed":
		return "❌"
	case "Inconclusive":
		return "❔"
	}
	return "⚠️"
}
