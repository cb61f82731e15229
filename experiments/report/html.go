package report

import (
	"html/template"
	"io"
	"sort"
	"time"
)

// The HTML is one self-contained file: styles and the one script inline,
// charts as inline SVG, no fonts, images or requests. Its Content Security
// Policy forbids any fetch, so that a page that tried one would show it in
// the console. The script counts the charts that drew (an SVG with a
// non-zero box and at least one mark) into body's data-charts, which the
// test reads.
var htmlTemplate = template.Must(template.New("html").Funcs(template.FuncMap{
	"charts": charts,
	"said":   objectiveMessage,
	"clock":  func(t time.Time) string { return t.UTC().Format(timeLabel) },
	"clockp": func(t *time.Time) string {
		if t == nil {
			return "–"
		}
		return t.UTC().Format(timeLabel)
	},
	"stamp": func(t *time.Time) string {
		if t == nil {
			return "–"
		}
		return t.UTC().Format(time.RFC3339)
	},
	"sorted": func(m map[string]string) [][2]string {
		out := make([][2]string, 0, len(m))
		for k, v := range m {
			out = append(out, [2]string{k, v})
		}
		sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
		return out
	},
	"lower": func(s string) string {
		if s == "" {
			return "unknown"
		}
		return string(append([]byte{s[0] | 0x20}, s[1:]...))
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 960px; color: #222; padding: 0 1em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; } h3 { font-size: 1em; }
table { border-collapse: collapse; margin: .5em 0; } th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { font-weight: bold; padding: 1px 8px; border-radius: 3px; color: #fff; background: #888; }
.passed { background: #2a8a2a; } .failed { background: #c0392b; } .error { background: #8e44ad; } .inconclusive { background: #b9770e; }
figure { margin: 1em 0; } figcaption { font-weight: bold; margin-bottom: .3em; }
svg.chart { display: block; background: #fff; border: 1px solid #eee; }
svg .plot { fill: #fafafa; stroke: #ccc; } svg .fault { fill: #d62728; fill-opacity: .12; }
svg .grid { stroke: #e4e4e4; } svg text { font-size: 11px; fill: #555; } svg text.y { text-anchor: end; }
svg polyline { stroke-width: 1.5; fill: none; }
.legend span { margin-right: 1.2em; } .legend svg { vertical-align: middle; margin-right: .3em; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: .3em .8em; }
code { font-size: 90%; }
</style>
</head>
<body>
<h1>{{.Title}} <span class="verdict {{lower .Verdict}}">{{.Verdict}}</span></h1>
{{if .Summary}}<h2>Summary</h2>
<table><tr><th>Step</th><th>Experiment</th><th>Verdict</th><th>Key figures</th></tr>
{{range .Summary}}<tr><td>{{.Step}}</td><td>{{.Experiment}}</td><td><span class="verdict {{lower .Verdict}}">{{.Verdict}}</span></td><td>{{range .Figures}}<code>{{.Name}}</code>={{.Value}} {{end}}</td></tr>
{{end}}</table>
{{end}}{{range .Reports}}{{template "report" .}}{{end}}
<script>
window.addEventListener("load", function () {
  var drawn = 0, all = document.querySelectorAll("svg.chart");
  all.forEach(function (svg) {
    var box = svg.getBoundingClientRect();
    if (box.width > 0 && box.height > 0 && svg.querySelector("[data-mark]")) { drawn++; }
  });
  document.body.dataset.charts = String(drawn);
  document.body.dataset.chartsExpected = String(all.length);
});
</script>
</body>
</html>
{{define "report"}}<h2>{{.Experiment.Namespace}}/{{.Experiment.Name}} <span class="verdict {{lower .Verdict}}">{{.Verdict}}</span></h2>
<p>{{.Message}}</p>
<table>
<tr><th>Phase</th><td>{{.Phase}}</td></tr>
<tr><th>Start</th><td>{{stamp .Start}}</td></tr>
<tr><th>End</th><td>{{stamp .End}}</td></tr>
{{if .Spec.Selector}}<tr><th>Targets</th><td>{{.Spec.Selector}}{{if .Spec.Targets}}: {{range $i, $t := .Spec.Targets}}{{if $i}}, {{end}}{{$t}}{{end}}{{end}}</td></tr>{{end}}
{{if .Spec.TrafficURL}}<tr><th>Traffic</th><td>{{.Spec.TrafficRate}} req/s to {{.Spec.TrafficURL}}</td></tr>{{end}}
</table>
{{range .Notes}}<p class="note">{{.}}</p>{{end}}
<h3>Objectives</h3>
{{if .Objectives}}<table class="objectives"><tr><th>Objective</th><th>Expression</th><th>Verdict</th><th>Measured</th></tr>
{{range .Objectives}}<tr><td>{{.Name}}{{if .Abort}} (abort){{end}}</td><td><code>{{.Expr}}</code></td><td><span class="verdict {{lower .Verdict}}">{{.Verdict}}</span></td><td>{{said .}}</td></tr>
{{end}}</table>{{else}}<p>No objectives.</p>{{end}}
<h3>Faults</h3>
<table><tr><th>Fault</th><th>Type</th><th>Window</th><th>Parameters</th></tr>
{{range .Spec.Faults}}<tr><td>{{.Name}}</td><td>{{.Type}}</td><td>{{clockp .From}}–{{clockp .To}} ({{.Duration}}{{if .StartAfter}} after {{.StartAfter}}{{end}})</td><td><code>{{printf "%s" .Parameters}}</code></td></tr>
{{end}}</table>
{{range charts .}}{{template "chart" .}}{{end}}
{{if .Records}}<h3>Records</h3>
<table><tr><th>Fault</th><th>Target</th><th>Node</th><th>Injected</th><th>Recovered</th><th>Effect</th><th>Error</th></tr>
{{range .Records}}<tr><td>{{.Fault}}{{if .Round}} #{{.Round}}{{end}}</td><td>{{.Target}}</td><td>{{.Node}}</td><td>{{clockp .Injected}}</td><td>{{clockp .Recovered}}</td><td>{{.Action}} {{.Effect}}</td><td>{{.Error}}</td></tr>
{{end}}</table>{{end}}
{{if .Evictions}}<h3>Evictions</h3>
<table><tr><th>Time</th><th>Pod</th><th>Node</th><th>Reason</th><th>QoS</th><th>Priority</th><th>PDB violated</th></tr>
{{range .Evictions}}<tr><td>{{clock .Time}}</td><td>{{.Pod}}</td><td>{{.Node}}</td><td>{{.Reason}}</td><td>{{.QOSClass}}</td><td class="num">{{.Priority}}</td><td>{{.ViolatedPDB}}</td></tr>
{{end}}</table>{{end}}
{{if .Timeline}}<h3>Timeline</h3>
<table><tr><th>Time</th><th>Reason</th><th>Message</th></tr>
{{range .Timeline}}<tr><td>{{clock .Time}}</td><td>{{.Reason}}</td><td>{{.Message}}</td></tr>
{{end}}</table>{{end}}
{{if .Measurements}}<h3>Measurements</h3>
<table>{{range sorted .Measurements}}<tr><td><code>{{index . 0}}</code></td><td class="num">{{index . 1}}</td></tr>
{{end}}</table>{{end}}
{{end}}
{{define "chart"}}<figure id="{{.ID}}"><figcaption>{{.Title}}</figcaption>
<svg class="chart" data-points="{{.Points}}" xmlns="http://www.w3.org/2000/svg" width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}" role="img" aria-label="{{.Title}}">
<rect class="plot" x="{{.Left}}" y="{{.Top}}" width="{{.PlotW}}" height="{{.PlotH}}"/>
{{range .Shades}}<rect class="fault" x="{{.X}}" y="{{$.Top}}" width="{{.W}}" height="{{$.PlotH}}"><title>{{.Label}}</title></rect>
{{end}}{{range .YTicks}}<text class="y" x="{{.X}}" y="{{.Y}}">{{.Label}}</text>
{{end}}{{range .XTicks}}<text class="x" x="{{.X}}" y="{{.Y}}" text-anchor="{{.Anchor}}">{{.Label}}</text>
{{end}}{{range .Bars}}<rect data-mark="bar" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="{{.Color}}"><title>{{.Title}}</title></rect>
{{end}}{{range .Lines}}<polyline data-mark="line" stroke="{{.Color}}" points="{{.Points}}"><title>{{.Name}}</title></polyline>
{{end}}{{range .Dots}}<circle data-mark="dot" cx="{{.X}}" cy="{{.Y}}" r="3.5" fill="{{.Color}}"><title>{{.Title}}</title></circle>
{{end}}</svg>
{{if .Legend}}<p class="legend">{{range .Legend}}<span><svg width="12" height="12"><rect width="12" height="12" fill="{{.Color}}"/></svg>{{.Name}}</span>{{end}}{{if .Unit}} <em>({{.Unit}}; fault windows shaded)</em>{{end}}</p>{{end}}
</figure>
{{end}}`))

func writeHTML(w io.Writer, d *document) error {
	return htmlTemplate.Execute(w, d)
}
