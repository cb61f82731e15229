package report

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Charts are SVG drawn here, in Go, so that the HTML needs no script
// library and no network: a chart is a plot area over time (or over
// categories), fault windows shaded, and lines, bars and dots in it.
type chart struct {
	ID, Title, Unit string
	W, H            float64
	Left, Top       float64
	PlotW, PlotH    float64
	// Points counts the data drawn, for data-points and the test.
	Points int
	Shades []shade
	Lines  []line
	Bars   []bar
	Dots   []dot
	XTicks []tick
	YTicks []tick
	Legend []legend
}

type shade struct {
	X, W  float64
	Label string
}

type line struct {
	Name, Color, Points string
}

type bar struct {
	X, Y, W, H   float64
	Color, Title string
}

type dot struct {
	X, Y         float64
	Color, Title string
}

type tick struct {
	X, Y  float64
	Label string
	// Anchor keeps the axis's end labels inside the chart.
	Anchor string
}

type legend struct{ Name, Color string }

var palette = []string{"#1f77b4", "#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}

const (
	chartW, chartH        = 900.0, 220.0
	marginL, marginR      = 70.0, 16.0
	marginT, marginB      = 10.0, 28.0
	rowH                  = 22.0
	timeLabel             = "15:04:05"
	faultShadeDescription = "fault window"
)

// axis maps times onto a chart's x.
type axis struct{ from, to time.Time }

func (a axis) x(t time.Time) float64 {
	span := a.to.Sub(a.from).Seconds()
	if span <= 0 {
		return marginL
	}
	return round(marginL + (chartW-marginL-marginR)*t.Sub(a.from).Seconds()/span)
}

func newChart(id, title, unit string, rows int) *chart {
	h := chartH
	if rows > 0 {
		h = marginT + marginB + rowH*float64(rows)
	}
	return &chart{ID: id, Title: title, Unit: unit, W: chartW, H: h, Left: marginL, Top: marginT, PlotW: chartW - marginL - marginR, PlotH: h - marginT - marginB}
}

// timed adds the time axis's ticks and the fault windows' shading.
func (c *chart) timed(a axis, faults []Fault) {
	for i := 0; i <= 4; i++ {
		t := a.from.Add(time.Duration(float64(a.to.Sub(a.from)) * float64(i) / 4))
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 4:
			anchor = "end"
		}
		c.XTicks = append(c.XTicks, tick{X: a.x(t), Y: c.Top + c.PlotH + 16, Label: t.UTC().Format(timeLabel), Anchor: anchor})
	}
	for _, f := range faults {
		if f.From == nil || f.To == nil {
			continue
		}
		x0, x1 := a.x(*f.From), a.x(*f.To)
		c.Shades = append(c.Shades, shade{X: x0, W: math.Max(x1-x0, 1), Label: fmt.Sprintf("%s %s (%s)", faultShadeDescription, f.Name, f.Type)})
	}
}

// y is the y of a value on a chart whose scale ends at top.
func (c *chart) y(v, top float64) float64 {
	if top <= 0 {
		return c.Top + c.PlotH
	}
	return round(c.Top + c.PlotH - c.PlotH*v/top)
}

// yTicks labels 0, half and the top of the scale.
func (c *chart) yTicks(top float64, format func(float64) string) {
	for _, v := range []float64{0, top / 2, top} {
		c.YTicks = append(c.YTicks, tick{X: c.Left - 6, Y: c.y(v, top), Label: format(v)})
	}
}

// series is one line over time.
type series struct {
	name   string
	times  []time.Time
	values []float64
}

// lines draws the series with a shared scale.
func (c *chart) lines(a axis, ss []series, format func(float64) string) {
	top := 0.0
	for _, s := range ss {
		for _, v := range s.values {
			top = math.Max(top, v)
		}
	}
	top = nice(top)
	c.yTicks(top, format)
	for i, s := range ss {
		color := palette[i%len(palette)]
		var pts []string
		for j, t := range s.times {
			pts = append(pts, num(a.x(t))+","+num(c.y(s.values[j], top)))
		}
		// A single point would be an invisible line: a dot shows it.
		if len(pts) == 1 {
			c.Dots = append(c.Dots, dot{X: a.x(s.times[0]), Y: c.y(s.values[0], top), Color: color, Title: s.name})
		}
		c.Lines = append(c.Lines, line{Name: s.name, Color: color, Points: strings.Join(pts, " ")})
		c.Legend = append(c.Legend, legend{Name: s.name, Color: color})
		c.Points += len(s.values)
	}
}

// nice rounds a scale's top up to 1, 2 or 5 times a power of ten.
func nice(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func round(v float64) float64 { return math.Round(v*10) / 10 }

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func plain(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func millis(v float64) string { return strconv.FormatFloat(v*1000, 'f', -1, 64) + " ms" }

// charts draws every chart the report has data for, in reading order.
func charts(r *Report) []*chart {
	a, ok := timeAxis(r)
	if !ok {
		return fsyncChart(r, nil)
	}
	var out []*chart
	out = append(out, timelineChart(r, a))
	if r.Traffic != nil && len(r.Traffic.Buckets) > 0 {
		out = append(out, trafficCharts(r, a)...)
	}
	if len(r.NotReady) > 0 {
		out = append(out, notReadyChart(r, a))
	}
	if len(r.Evictions) > 0 {
		out = append(out, evictionsChart(r, a))
	}
	return fsyncChart(r, out)
}

// timeAxis spans everything the report saw happen.
func timeAxis(r *Report) (axis, bool) {
	var ts []time.Time
	add := func(t *time.Time) {
		if t != nil && !t.IsZero() {
			ts = append(ts, *t)
		}
	}
	add(r.Start)
	add(r.End)
	for _, f := range r.Spec.Faults {
		add(f.From)
		add(f.To)
	}
	for i := range r.Timeline {
		add(&r.Timeline[i].Time)
	}
	if r.Traffic != nil {
		for _, b := range r.Traffic.Buckets {
			start, end := b.Start, b.Start.Add(time.Duration(b.Seconds)*time.Second)
			add(&start)
			add(&end)
		}
	}
	for _, s := range r.NotReady {
		from := s.From
		add(&from)
		add(s.To)
	}
	for i := range r.Evictions {
		add(&r.Evictions[i].Time)
	}
	if len(ts) == 0 {
		return axis{}, false
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	a := axis{from: ts[0], to: ts[len(ts)-1]}
	if !a.to.After(a.from) {
		a.to = a.from.Add(time.Second)
	}
	return a, true
}

// timelineChart is one row per fault, its window a bar, and a row of the
// timeline's events as dots.
func timelineChart(r *Report, a axis) *chart {
	c := newChart("timeline", "Timeline: fault windows and events", "", len(r.Spec.Faults)+1)
	c.timed(a, r.Spec.Faults)
	for i, f := range r.Spec.Faults {
		y := c.Top + rowH*float64(i)
		c.YTicks = append(c.YTicks, tick{X: c.Left - 6, Y: y + rowH/2 + 4, Label: f.Name})
		if f.From != nil && f.To != nil {
			x0, x1 := a.x(*f.From), a.x(*f.To)
			c.Bars = append(c.Bars, bar{X: x0, Y: y + 4, W: math.Max(x1-x0, 1), H: rowH - 8, Color: palette[1],
				Title: fmt.Sprintf("%s (%s) %s–%s", f.Name, f.Type, f.From.Format(timeLabel), f.To.Format(timeLabel))})
			c.Points++
		}
	}
	y := c.Top + rowH*float64(len(r.Spec.Faults))
	c.YTicks = append(c.YTicks, tick{X: c.Left - 6, Y: y + rowH/2 + 4, Label: "events"})
	for _, e := range r.Timeline {
		c.Dots = append(c.Dots, dot{X: a.x(e.Time), Y: y + rowH/2, Color: palette[0], Title: e.Time.Format(timeLabel) + " " + e.Reason + ": " + e.Message})
		c.Points++
	}
	return c
}

// trafficCharts are the rate, the errors by class and the p99 latency,
// each per second.
func trafficCharts(r *Report, a axis) []*chart {
	bs := r.Traffic.Buckets
	var times []time.Time
	var sent, answered, latency []float64
	var ltimes []time.Time
	classes := map[string][]float64{}
	for i, b := range bs {
		secs := float64(max(b.Seconds, 1))
		// A bucket is drawn at its middle so that the lines and the
		// shaded windows agree.
		t := b.Start.Add(time.Duration(secs * float64(time.Second) / 2))
		times = append(times, t)
		sent = append(sent, float64(b.Sent)/secs)
		var ok int64
		for _, n := range b.Status {
			ok += n
		}
		answered = append(answered, float64(ok)/secs)
		for c, n := range b.Errors {
			if classes[c] == nil {
				classes[c] = make([]float64, len(bs))
			}
			classes[c][i] = float64(n) / secs
		}
		if b.LatencyP99Seconds != nil {
			ltimes = append(ltimes, t)
			latency = append(latency, *b.LatencyP99Seconds)
		}
	}
	rate := newChart("traffic-rate", "Traffic: requests per second", "req/s", 0)
	rate.timed(a, r.Spec.Faults)
	rate.lines(a, []series{{"sent", times, sent}, {"answered", times, answered}}, plain)
	out := []*chart{rate}

	errs := newChart("traffic-errors", "Traffic: errors per second, by class", "errors/s", 0)
	errs.timed(a, r.Spec.Faults)
	names := make([]string, 0, len(classes))
	for c := range classes {
		names = append(names, c)
	}
	sort.Strings(names)
	var ss []series
	for _, n := range names {
		ss = append(ss, series{n, times, classes[n]})
	}
	if len(ss) == 0 {
		// No errors is a result worth drawing: a flat line at zero.
		ss = append(ss, series{"errors (none)", times, make([]float64, len(times))})
	}
	errs.lines(a, ss, plain)
	out = append(out, errs)

	if len(latency) > 0 {
		lat := newChart("traffic-latency", "Traffic: p99 latency of answered requests", "ms", 0)
		lat.timed(a, r.Spec.Faults)
		lat.lines(a, []series{{"p99", ltimes, latency}}, millis)
		out = append(out, lat)
	}
	return out
}

// notReadyChart is one row per node, a bar per NotReady span; a span
// that had not ended runs to the chart's end.
func notReadyChart(r *Report, a axis) *chart {
	var nodes []string
	row := map[string]int{}
	for _, s := range r.NotReady {
		if _, ok := row[s.Node]; !ok {
			row[s.Node] = len(nodes)
			nodes = append(nodes, s.Node)
		}
	}
	c := newChart("not-ready", "Nodes NotReady", "", len(nodes))
	c.timed(a, r.Spec.Faults)
	for i, n := range nodes {
		c.YTicks = append(c.YTicks, tick{X: c.Left - 6, Y: c.Top + rowH*float64(i) + rowH/2 + 4, Label: n})
	}
	for _, s := range r.NotReady {
		to, open := a.to, " (still NotReady)"
		if s.To != nil {
			to, open = *s.To, ""
		}
		x0, x1 := a.x(s.From), a.x(to)
		c.Bars = append(c.Bars, bar{X: x0, Y: c.Top + rowH*float64(row[s.Node]) + 4, W: math.Max(x1-x0, 1), H: rowH - 8, Color: palette[2],
			Title: fmt.Sprintf("%s NotReady %s–%s, %.0fs%s", s.Node, s.From.Format(timeLabel), to.Format(timeLabel), to.Sub(s.From).Seconds(), open)})
		c.Points++
	}
	return c
}

// evictionsChart is the running count of evictions, a dot per pod.
func evictionsChart(r *Report, a axis) *chart {
	c := newChart("evictions", "Evictions over time (cumulative)", "pods", 0)
	c.timed(a, r.Spec.Faults)
	top := nice(float64(len(r.Evictions)))
	c.yTicks(top, plain)
	pts := []string{num(a.x(a.from)) + "," + num(c.y(0, top))}
	for i, e := range r.Evictions {
		x := a.x(e.Time)
		pts = append(pts, num(x)+","+num(c.y(float64(i), top)), num(x)+","+num(c.y(float64(i+1), top)))
		title := fmt.Sprintf("%s %s from %s (%s", e.Time.Format(timeLabel), e.Pod, e.Node, e.Reason)
		if e.QOSClass != "" {
			title += fmt.Sprintf(", %s, priority %d", e.QOSClass, e.Priority)
		}
		c.Dots = append(c.Dots, dot{X: x, Y: c.y(float64(i+1), top), Color: palette[3], Title: title + ")"})
		c.Points++
	}
	pts = append(pts, num(a.x(a.to))+","+num(c.y(float64(len(r.Evictions)), top)))
	c.Lines = append(c.Lines, line{Name: "evicted pods", Color: palette[3], Points: strings.Join(pts, " ")})
	return c
}

// fsyncChart is etcd's WAL fsync p99 per window, as bars.
func fsyncChart(r *Report, out []*chart) []*chart {
	if len(r.Fsync) == 0 {
		return out
	}
	c := newChart("fsync", "etcd WAL fsync p99 by window", "ms", 0)
	top := 0.0
	for _, f := range r.Fsync {
		top = math.Max(top, f.P99Seconds)
	}
	top = nice(top)
	c.yTicks(top, millis)
	slot := c.PlotW / float64(len(FsyncWindows))
	for i, w := range FsyncWindows {
		x := c.Left + slot*float64(i)
		c.XTicks = append(c.XTicks, tick{X: round(x + slot/2), Y: c.Top + c.PlotH + 16, Label: w, Anchor: "middle"})
		for _, f := range r.Fsync {
			if f.Window != w {
				continue
			}
			color := palette[0]
			if w == "fault" {
				color = palette[1]
			}
			y := c.y(f.P99Seconds, top)
			c.Bars = append(c.Bars, bar{X: round(x + slot/4), Y: y, W: round(slot / 2), H: math.Max(round(c.Top+c.PlotH-y), 1), Color: color,
				Title: fmt.Sprintf("%s: p99 %s", w, millis(f.P99Seconds))})
			c.Points++
		}
	}
	return append(out, c)
}
