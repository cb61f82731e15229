package controller

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"faultline.dev/faultline/analyzers"
	"faultline.dev/faultline/analyzers/evictions"
	"faultline.dev/faultline/analyzers/nodes"
	"faultline.dev/faultline/analyzers/oomkills"
	"faultline.dev/faultline/analyzers/prometheus"
	"faultline.dev/faultline/analyzers/slo"
	"faultline.dev/faultline/analyzers/traffic"
	"faultline.dev/faultline/analyzers/workloads"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// Analysis runs the analyzers of every experiment in progress, fed by the
// manager's informers. Their state is written to the experiment's status at
// each step, and rebuilt from it (and from the objects' own timestamps)
// when the controller restarts.
type Analysis struct {
	mu     sync.Mutex
	runs   map[types.NamespacedName]*run
	reader client.Reader // the manager's cache
	// APIServer is the API server's /metrics with the controller's
	// credentials, for prometheus.scrape.apiServer.
	APIServer *prometheus.Target
	// Clock is the reconciler's; the informers' handlers stamp what they
	// see with it.
	Clock clock.PassiveClock
}

type run struct {
	nodes     *nodes.Tracker
	evictions *evictions.Tracker
	oom       *oomkills.Tracker
	// workloads: what the Deployments on the targets kept serving. A
	// restarted controller measures them from its restart on.
	workloads *workloads.Tracker
	// recovery, once measured
	recovery map[string]any
	// traffic, when the experiment drives it; stopTraffic ends it.
	traffic     *traffic.Prober
	stopTraffic context.CancelFunc
	// trafficPartial: the controller restarted after the faults began, so
	// the run's traffic was not measured whole.
	trafficPartial bool
	// prom measures etcd and the API server around the faults; promDone
	// is closed once its recovery window is measured (or it gave up), and
	// stopProm ends it early.
	prom        *prometheus.Analyzer
	promDone    chan struct{}
	stopProm    func()
	promPartial bool
}

// TrafficConfig turns the experiment's traffic into the prober's settings:
// the windows are the baseline before the faults, the faults, and the
// recovery after them.
func TrafficConfig(exp *v1alpha1.Experiment) (traffic.Config, time.Time) {
	tr := exp.Spec.Traffic
	baseline, recovery := tr.TrafficWindows()
	start, end := faultSpan(exp, baseline)
	url := tr.URL
	if exp.Status.TrafficURL != "" {
		url = exp.Status.TrafficURL
	}
	cfg := traffic.Config{URL: url, Method: tr.Method, Headers: tr.Headers, Rate: float64(tr.Rate), Netns: tr.NetworkNamespace, NewConnections: !tr.KeepAlive,
		Windows: []traffic.Window{{Name: "baseline", Start: start.Add(-baseline)}, {Name: "fault", Start: start}, {Name: "recovery", Start: end}}}
	if tr.Timeout != nil {
		cfg.Timeout = tr.Timeout.Duration
	}
	return cfg, end.Add(recovery)
}

// faultSpan is when the faults start and end as planned: from the status's
// start, or (before the plan) a baseline from now.
func faultSpan(exp *v1alpha1.Experiment, baseline time.Duration) (start, end time.Time) {
	start = time.Now().Add(baseline)
	if exp.Status.StartTime != nil {
		start = exp.Status.StartTime.Time
	}
	for i := range exp.Spec.Faults {
		f := &exp.Spec.Faults[i]
		at := start
		if f.StartAfter != nil {
			at = at.Add(f.StartAfter.Duration)
		}
		if e := at.Add(f.Duration.Duration); e.After(end) {
			end = e
		}
	}
	return start, end
}

// PrometheusConfig turns the experiment's prometheus into the analyzer's
// settings; apiServer is the controller's own /metrics target.
func PrometheusConfig(exp *v1alpha1.Experiment, apiServer *prometheus.Target) prometheus.Config {
	pr := exp.Spec.Prometheus
	cfg := prometheus.Config{Address: pr.Address, Client: &http.Client{Timeout: 10 * time.Second}}
	if sc := pr.Scrape; sc != nil {
		cfg.Scrape = &prometheus.Scrape{}
		for _, u := range sc.Etcd {
			cfg.Scrape.Etcd = append(cfg.Scrape.Etcd, prometheus.Target{URL: u, Client: cfg.Client})
		}
		if sc.APIServer {
			cfg.Scrape.APIServer = apiServer
			if apiServer == nil {
				// Validate names the field.
				cfg.Scrape.APIServer = &prometheus.Target{}
			}
		}
	}
	for _, q := range pr.Queries {
		pq := prometheus.Query{Name: q.Name, Query: q.Query, SuccessCondition: q.SuccessCondition, FailureCondition: q.FailureCondition, FailureLimit: int(q.FailureLimit)}
		if q.Interval != nil {
			pq.Interval = q.Interval.Duration
		}
		cfg.Queries = append(cfg.Queries, pq)
	}
	return cfg
}

// startPrometheus starts measuring: the baseline now, and marks at the
// planned start and end of the faults and at the end of the recovery.
func (r *run) startPrometheus(exp *v1alpha1.Experiment, apiServer *prometheus.Target) error {
	p, err := prometheus.New(PrometheusConfig(exp, apiServer), nil)
	if err != nil {
		return err
	}
	baseline, recovery := exp.Spec.Prometheus.PrometheusWindows()
	start, end := faultSpan(exp, baseline)
	p.Mark(prometheus.BaselineStart)
	timers := []*time.Timer{
		time.AfterFunc(time.Until(start), func() { p.Mark(prometheus.FaultStart) }),
		time.AfterFunc(time.Until(end), func() { p.Mark(prometheus.FaultEnd) }),
		time.AfterFunc(time.Until(end.Add(recovery)), func() { p.Mark(prometheus.RecoveryEnd) }),
	}
	// Measuring the last window takes a few requests: a minute is ample.
	ctx, cancel := context.WithDeadline(context.Background(), end.Add(recovery+time.Minute))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Run(ctx)
	}()
	r.prom, r.promDone = p, done
	r.stopProm = func() {
		for _, t := range timers {
			t.Stop()
		}
		cancel()
	}
	return nil
}

// Measuring reports whether the experiment's Prometheus analyzer still
// measures: the verdict waits for its recovery window.
func (a *Analysis) Measuring(exp *v1alpha1.Experiment) bool {
	r := a.get(exp)
	if r == nil || r.promDone == nil {
		return false
	}
	select {
	case <-r.promDone:
		return false
	default:
		return true
	}
}

// StopTraffic ends the experiment's traffic, keeping what it measured.
func (a *Analysis) StopTraffic(exp *v1alpha1.Experiment) {
	if r := a.get(exp); r != nil && r.stopTraffic != nil {
		r.stopTraffic()
	}
}

func NewAnalysis() *Analysis {
	return &Analysis{runs: map[types.NamespacedName]*run{}, Clock: clock.RealClock{}}
}

// Setup registers the analyzers' handlers on the manager's informers.
func (a *Analysis) Setup(ctx context.Context, c cache.Cache) error {
	a.reader = c
	ni, err := c.GetInformer(ctx, &corev1.Node{})
	if err != nil {
		return err
	}
	if _, err := ni.AddEventHandler(analyzers.Handler(func(n *corev1.Node, deleted bool) {
		if deleted {
			return
		}
		now := a.Clock.Now()
		a.each(func(r *run) { r.nodes.Observe(n, now) })
	})); err != nil {
		return err
	}
	pi, err := c.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		return err
	}
	// One pod cache (stripped by evictions.Strip, which keeps what both
	// trackers read) feeds the evictions and the OOM kills; a deleted pod's
	// last state may still show a kill.
	if _, err = pi.AddEventHandler(analyzers.Handler(func(p *corev1.Pod, _ bool) {
		a.each(func(r *run) {
			r.evictions.Observe(p)
			r.oom.Observe(p)
		})
	})); err != nil {
		return err
	}
	di, err := c.GetInformer(ctx, &appsv1.Deployment{})
	if err != nil {
		return err
	}
	if _, err := di.AddEventHandler(analyzers.Handler(func(d *appsv1.Deployment, deleted bool) {
		if !deleted {
			now := a.Clock.Now()
			a.each(func(r *run) { r.workloads.Observe(d, now) })
		}
	})); err != nil {
		return err
	}
	ei, err := c.GetInformer(ctx, &corev1.Event{})
	if err != nil {
		return err
	}
	// Every Event, of any involved kind: the tracker takes the pods'
	// eviction Events and the nodes' EvictionThresholdMet.
	_, err = ei.AddEventHandler(analyzers.Handler(func(e *corev1.Event, deleted bool) {
		if !deleted {
			a.each(func(r *run) { r.evictions.ObserveEvent(e) })
		}
	}))
	return err
}

func (a *Analysis) each(f func(*run)) {
	a.mu.Lock()
	runs := make([]*run, 0, len(a.runs))
	for _, r := range a.runs {
		runs = append(runs, r)
	}
	a.mu.Unlock()
	for _, r := range runs {
		f(r)
	}
}

func targetNodes(exp *v1alpha1.Experiment) []string {
	seen := map[string]bool{}
	var out []string
	for _, rec := range exp.Status.Records {
		if rec.Node != "" && !seen[rec.Node] {
			seen[rec.Node] = true
			out = append(out, rec.Node)
		}
	}
	return out
}

// Ensure makes sure an experiment in progress is analyzed, rebuilding its
// analyzers from the status (and the cluster's current state) after a
// controller restart.
func (a *Analysis) Ensure(ctx context.Context, c client.Reader, exp *v1alpha1.Experiment) error {
	if a.create(ctx, exp) {
		return a.seed(ctx, c, exp)
	}
	return nil
}

func (a *Analysis) create(ctx context.Context, exp *v1alpha1.Experiment) bool {
	key := types.NamespacedName{Namespace: exp.Namespace, Name: exp.Name}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.runs[key]; ok {
		return false
	}
	since := a.Clock.Now()
	if exp.Status.StartTime != nil {
		since = exp.Status.StartTime.Time
	}
	r := &run{nodes: nodes.New(targetNodes(exp)...), evictions: evictions.New(since), oom: oomkills.New(since), workloads: workloads.New(since, exp.Status.Workloads...)}
	// Where the workloads stand now: the informer tells only changes.
	if a.reader != nil {
		for _, w := range exp.Status.Workloads {
			ns, name := splitKey(w)
			var d appsv1.Deployment
			if err := a.reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d); err == nil {
				r.workloads.Observe(&d, a.Clock.Now())
			}
		}
	}
	// Seed with what the status already holds.
	for _, s := range exp.Status.NodeSpans {
		r.nodes.ObserveCondition(s.Node, corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionUnknown, LastTransitionTime: s.From}, s.From.Time)
		if s.To != nil {
			r.nodes.ObserveCondition(s.Node, corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastTransitionTime: *s.To}, s.To.Time)
		}
	}
	for _, c := range exp.Status.Taints {
		r.nodes.Seed(nodes.TaintChange{Node: c.Node, Taint: c.Taint, Added: c.Added, At: c.Time.Time})
	}
	for _, e := range exp.Status.Evictions {
		ns, name := splitKey(e.Pod)
		r.evictions.Seed(evictions.Eviction{Namespace: ns, Pod: name, Node: e.Node, Reason: e.Reason, At: e.Time.Time, ViolatedPDB: e.ViolatedPDB,
			QOSClass: corev1.PodQOSClass(e.QOSClass), Priority: e.Priority, Resource: e.Resource})
	}
	r.evictions.ViolatedPDB = a.violatedPDB
	// OOM kills are not in the status: the count and its first and last
	// times carry on from the measurements (see oomkills.Resume); the
	// kills themselves are seen again only as far as the pods still show
	// them.
	if kills, first, last := resumeOOM(exp); kills > 0 {
		r.oom.Resume(kills, first, last)
	}
	// Traffic starts with the plan, before the faults. A controller that
	// restarts once the plan is made cannot measure the run whole: it
	// starts none, and says so.
	if exp.Spec.Traffic != nil && !exp.Status.Phase.IsFinal() {
		if p := exp.Status.Phase; p != "" && p != v1alpha1.PhasePending {
			r.trafficPartial = true
		} else {
			cfg, until := TrafficConfig(exp)
			// Checked at plan time; an error here means the cluster
			// changed (the network namespace went away): no traffic, and
			// the objectives that read it are Inconclusive.
			if p, err := traffic.New(cfg, clock.RealClock{}); err == nil {
				ctx, cancel := context.WithDeadline(context.Background(), until)
				r.traffic, r.stopTraffic = p, cancel
				go func() { _ = p.Run(ctx) }()
			}
		}
	}
	// Prometheus, like traffic, measures from the plan on: a controller
	// restarted later missed the baseline (and, scraping, the counters'
	// first values).
	if exp.Spec.Prometheus != nil && !exp.Status.Phase.IsFinal() {
		if p := exp.Status.Phase; p != "" && p != v1alpha1.PhasePending {
			r.promPartial = true
		} else if err := r.startPrometheus(exp, a.APIServer); err != nil {
			r.promPartial = true // checked at plan time: the objectives are Inconclusive
		}
	}
	a.runs[key] = r
	return true
}

func splitKey(s string) (string, string) {
	for i := range s {
		if s[i] == '/' {
			return s[:i], s[i+1:]
		}
	}
	return "", s
}

// seed feeds the current state of the cluster to a new run: informers only
// send changes after the handlers were added.
func (a *Analysis) seed(ctx context.Context, c client.Reader, exp *v1alpha1.Experiment) error {
	r := a.get(exp)
	if r == nil {
		return nil
	}
	now := a.Clock.Now()
	// A NotReady span that began while no controller watched (it crashed)
	// is known from the node lifecycle controller's NodeNotReady Event; the
	// node's current Ready condition then closes it.
	targets := map[string]bool{}
	for _, n := range targetNodes(exp) {
		targets[n] = true
	}
	var events corev1.EventList
	if err := c.List(ctx, &events); err == nil && exp.Status.StartTime != nil {
		sort.Slice(events.Items, func(i, j int) bool { return eventTime(&events.Items[i]).Before(eventTime(&events.Items[j])) })
		for i := range events.Items {
			e := &events.Items[i]
			at := eventTime(e)
			if e.InvolvedObject.Kind != "Node" || !targets[e.InvolvedObject.Name] || e.Reason != "NodeNotReady" || at.Before(exp.Status.StartTime.Time) || r.nodes.Covers(e.InvolvedObject.Name, at) {
				continue
			}
			r.nodes.ObserveCondition(e.InvolvedObject.Name, corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionUnknown, LastTransitionTime: metav1.NewTime(at)}, at)
		}
	}
	// Evictions of pods deleted while no controller watched are known from
	// their Events, and the nodes' EvictionThresholdMet Events hold their
	// own counts: replayed whole (Events live an hour). So are the
	// kubelet's pressure transitions, oldest first, for pressure spans that
	// ended meanwhile (the nodes' current conditions give those still open).
	for i := range events.Items {
		e := &events.Items[i]
		r.evictions.ObserveEvent(e)
		if cond, ok := nodes.PressureEvents[e.Reason]; ok && e.InvolvedObject.Kind == "Node" && exp.Status.StartTime != nil && !eventTime(e).Before(exp.Status.StartTime.Time) {
			cond.LastTransitionTime = metav1.NewTime(eventTime(e))
			r.nodes.ObserveCondition(e.InvolvedObject.Name, cond, eventTime(e))
		}
	}
	for n := range targets {
		var node corev1.Node
		if err := c.Get(ctx, client.ObjectKey{Name: n}, &node); err == nil {
			r.nodes.Observe(&node, now)
		}
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods); err != nil {
		return err
	}
	for i := range pods.Items {
		r.evictions.Observe(&pods.Items[i])
		r.oom.Observe(&pods.Items[i])
	}
	if keys, size := workload(exp, pods.Items, r.evictions.List(), now); len(keys) > 0 || size > 0 {
		r.evictions.SetWorkload(keys, size)
	}
	return nil
}

// workload is the fault's workload at its start, for evictions.lostShare:
// the pods the pod targets select (by namespace, labels, names, nodes and
// phases; annotations and fields are not in the stripped cache), or the
// pods on the target nodes; none for other targets. Pods created after
// the start are not in it, nor pods already finished. A restarted
// controller takes the size from the status, and the pods from the
// cluster as it is: the pods still there, those evicted and still shown
// (Failed), and those evicted and since deleted if they ran on a target
// node, or in a target namespace.
func workload(exp *v1alpha1.Experiment, pods []corev1.Pod, evicted []evictions.Eviction, now time.Time) ([]string, int) {
	since := now
	if exp.Status.StartTime != nil {
		since = exp.Status.StartTime.Time
	}
	size, _ := strconv.Atoi(exp.Status.Measurements["evictions.workloadPods"])
	wasEvicted := map[string]bool{}
	for _, e := range evicted {
		wasEvicted[e.Namespace+"/"+e.Pod] = true
	}
	var in func(p *corev1.Pod) bool
	var inScope func(e evictions.Eviction) bool
	switch t := exp.Spec.Targets; {
	case t.Nodes != nil:
		nodes := map[string]bool{}
		for _, n := range targetNodes(exp) {
			nodes[n] = true
		}
		in = func(p *corev1.Pod) bool { return nodes[p.Spec.NodeName] }
		inScope = func(e evictions.Eviction) bool { return nodes[e.Node] }
	case t.Pods != nil:
		ps := t.Pods
		namespaces := map[string]bool{}
		for _, ns := range ps.Namespaces {
			namespaces[ns] = true
		}
		for ns := range ps.Pods {
			namespaces[ns] = true
		}
		if len(namespaces) == 0 {
			namespaces[exp.Namespace] = true
		}
		sel, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchLabels: ps.LabelSelectors, MatchExpressions: ps.ExpressionSelectors})
		if err != nil {
			return nil, 0
		}
		in = func(p *corev1.Pod) bool {
			switch {
			case !namespaces[p.Namespace] || !sel.Matches(labels.Set(p.Labels)):
				return false
			case len(ps.Nodes) > 0 && !contains(ps.Nodes, p.Spec.NodeName):
				return false
			case len(ps.Pods) > 0 && !contains(ps.Pods[p.Namespace], p.Name):
				return false
			}
			return len(ps.PodPhaseSelectors) == 0 || contains(ps.PodPhaseSelectors, string(p.Status.Phase)) || wasEvicted[p.Namespace+"/"+p.Name]
		}
		inScope = func(e evictions.Eviction) bool { return namespaces[e.Namespace] }
	default:
		return nil, 0
	}
	var keys []string
	seen := map[string]bool{}
	for i := range pods {
		p := &pods[i]
		key := p.Namespace + "/" + p.Name
		done := p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
		if p.CreationTimestamp.After(since) || done && !wasEvicted[key] || !in(p) {
			continue
		}
		keys = append(keys, key)
		seen[key] = true
	}
	if size > 0 {
		for _, e := range evicted {
			if key := e.Namespace + "/" + e.Pod; !seen[key] && inScope(e) {
				keys = append(keys, key)
				seen[key] = true
			}
		}
	}
	return keys, size
}

// resumeOOM reads back the OOM kills' count and times from the status's
// measurements.
func resumeOOM(exp *v1alpha1.Experiment) (kills int64, first, last time.Time) {
	m := exp.Status.Measurements
	kills, _ = strconv.ParseInt(m["oom.kills"], 10, 64)
	if kills == 0 || exp.Status.StartTime == nil {
		return 0, first, last
	}
	at := func(key string) time.Time {
		s, err := strconv.ParseFloat(m[key], 64)
		if err != nil {
			return time.Time{}
		}
		return exp.Status.StartTime.Add(time.Duration(math.Round(s * float64(time.Second))))
	}
	return kills, at("oom.secondsToFirst"), at("oom.secondsToLast")
}

func (a *Analysis) get(exp *v1alpha1.Experiment) *run {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.runs[types.NamespacedName{Namespace: exp.Namespace, Name: exp.Name}]
}

// Forget drops an experiment's analyzers.
func (a *Analysis) Forget(key types.NamespacedName) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r := a.runs[key]; r != nil {
		if r.stopTraffic != nil {
			r.stopTraffic()
		}
		if r.stopProm != nil {
			r.stopProm()
		}
	}
	delete(a.runs, key)
}

// Measurements are the analyzers' current values, as objectives see them.
func (a *Analysis) Measurements(exp *v1alpha1.Experiment, now time.Time) slo.Measurements {
	r := a.get(exp)
	if r == nil {
		return slo.Measurements{}
	}
	m := slo.Measurements{}
	for _, p := range r.providers() {
		m[p.Name()] = p.Measure(now)
	}
	// How long after the faults began the first node went NotReady: the
	// grace period, as the cluster applied it.
	if spans := r.nodes.Spans(); len(spans) > 0 && exp.Status.StartTime != nil {
		m["nodes"]["secondsToNotReady"] = spans[0].From.Sub(exp.Status.StartTime.Time).Seconds()
	}
	// Likewise to the first MemoryPressure: how fast memory ran short.
	if spans := r.nodes.ConditionSpans(corev1.NodeMemoryPressure); len(spans) > 0 && exp.Status.StartTime != nil {
		m["nodes"]["secondsToMemoryPressure"] = spans[0].From.Sub(exp.Status.StartTime.Time).Seconds()
	}
	if r.recovery != nil {
		m["recovery"] = r.recovery
	}
	return m
}

// providers are the run's analyzers, as objectives read them. Traffic and
// Prometheus measured over part of the run only say so: judging on part of
// it could pass a run nobody watched, so objectives on them are
// Inconclusive instead.
func (r *run) providers() []analyzers.Provider {
	ps := []analyzers.Provider{r.nodes, r.evictions, r.oom, r.workloads}
	switch {
	case r.trafficPartial:
		ps = append(ps, partial("traffic"))
	case r.traffic != nil:
		ps = append(ps, r.traffic)
	}
	switch {
	case r.promPartial:
		ps = append(ps, partial("prometheus"))
	case r.prom != nil:
		ps = append(ps, r.prom)
	}
	return ps
}

// partial stands for an analyzer that measured part of the run only.
type partial string

func (p partial) Name() string                   { return string(p) }
func (partial) Measure(time.Time) map[string]any { return map[string]any{"partial": true} }

// Snapshot writes the analyzers' state into the status.
func (a *Analysis) Snapshot(exp *v1alpha1.Experiment, now time.Time) {
	r := a.get(exp)
	if r == nil {
		return
	}
	exp.Status.NodeSpans = nil
	for _, s := range r.nodes.Spans() {
		ns := v1alpha1.NodeSpan{Node: s.Node, From: metav1.NewTime(s.From)}
		if !s.To.IsZero() {
			to := metav1.NewTime(s.To)
			ns.To = &to
		}
		exp.Status.NodeSpans = append(exp.Status.NodeSpans, ns)
	}
	exp.Status.Taints = nil
	for _, c := range r.nodes.TaintChanges() {
		exp.Status.Taints = append(exp.Status.Taints, v1alpha1.TaintChange{Node: c.Node, Taint: c.Taint, Added: c.Added, Time: metav1.NewTime(c.At)})
	}
	exp.Status.Evictions = nil
	for i, e := range r.evictions.List() {
		if i == 500 {
			break
		}
		exp.Status.Evictions = append(exp.Status.Evictions, v1alpha1.EvictionRecord{Pod: e.Namespace + "/" + e.Pod, Node: e.Node, Reason: e.Reason, Time: metav1.NewTime(e.At), ViolatedPDB: e.ViolatedPDB,
			QOSClass: string(e.QOSClass), Priority: e.Priority, Resource: e.Resource})
	}
	if r.traffic != nil {
		exp.Status.Traffic = trafficBuckets(r.traffic.Timeline(), 900)
	}
	flat := map[string]string{}
	for group, vals := range a.Measurements(exp, now) {
		flatten(flat, group, vals)
	}
	exp.Status.Measurements = flat
}

// maxListed bounds the items of a list written into the status.
const maxListed = 50

func flatten(out map[string]string, prefix string, v any) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			flatten(out, prefix+"."+k, x[k])
		}
	case float64:
		// Six decimals: latencies are seconds, ratios are small.
		out[prefix] = strconv.FormatFloat(math.Round(x*1e6)/1e6, 'f', -1, 64)
	case []any:
		// A list (evictions.order) is long: one line an item, the first
		// maxListed, numbered so that they sort.
		for i, item := range x[:min(len(x), maxListed)] {
			key := fmt.Sprintf("%s.%02d", prefix, i)
			if m, ok := item.(map[string]any); ok {
				one := map[string]string{}
				flatten(one, "", m)
				parts := make([]string, 0, len(one))
				for k, v := range one {
					parts = append(parts, k[1:]+"="+v)
				}
				sort.Strings(parts)
				out[key] = strings.Join(parts, " ")
			} else {
				flatten(out, key, item)
			}
		}
	default:
		out[prefix] = fmt.Sprint(x)
	}
}

// Recovered measures recovery after the faults ended at end: every target
// node Ready and every workload Available. The first time both hold is
// kept as recovery.seconds (from the end of the faults).
func (a *Analysis) Recovered(ctx context.Context, c client.Reader, exp *v1alpha1.Experiment, end time.Time) (bool, error) {
	r := a.get(exp)
	if r == nil {
		return false, nil
	}
	if r.recovery != nil {
		return true, nil
	}
	now := a.Clock.Now()
	nodeSeconds := 0.0
	for _, n := range targetNodes(exp) {
		var node corev1.Node
		if err := c.Get(ctx, client.ObjectKey{Name: n}, &node); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		r.nodes.Observe(&node, now)
		ready := false
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		// Recovered means schedulable again: Ready, and the lifecycle
		// controller's unreachable and not-ready taints gone.
		for _, taint := range node.Spec.Taints {
			if taint.Key == corev1.TaintNodeUnreachable || taint.Key == corev1.TaintNodeNotReady {
				ready = false
			}
		}
		if !ready {
			return false, nil
		}
		if t := r.nodes.ReadyAgain(n); !t.IsZero() && t.Sub(end).Seconds() > nodeSeconds {
			nodeSeconds = t.Sub(end).Seconds()
		}
	}
	for _, w := range exp.Status.Workloads {
		ns, name := splitKey(w)
		var d appsv1.Deployment
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
			continue // deleted: nothing to wait for
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		if d.Status.AvailableReplicas < want || d.Status.UpdatedReplicas < want {
			return false, nil
		}
	}
	secs := now.Sub(end).Seconds()
	if secs < nodeSeconds {
		secs = nodeSeconds
	}
	r.recovery = map[string]any{"seconds": secs, "nodeSeconds": nodeSeconds, "workloads": int64(len(exp.Status.Workloads))}
	return true, nil
}

// violatedPDB names a PodDisruptionBudget that covers the pod and allows no
// disruption now: evicting it breaks the budget (the taint manager and
// kubelet pressure evictions do not ask budgets first).
func (a *Analysis) violatedPDB(p *corev1.Pod) string {
	if a.reader == nil {
		return ""
	}
	var pdbs policyv1.PodDisruptionBudgetList
	// From the pod informer's handler, which has no context: the cache
	// answers from memory.
	if err := a.reader.List(context.Background(), &pdbs, client.InNamespace(p.Namespace)); err != nil {
		return ""
	}
	for _, pdb := range pdbs.Items {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		if pdb.Status.DisruptionsAllowed <= 0 {
			return pdb.Name
		}
	}
	return ""
}

func eventTime(e *corev1.Event) time.Time {
	if !e.EventTime.IsZero() {
		return e.EventTime.Time
	}
	return e.FirstTimestamp.Time
}

// trafficBuckets folds the prober's seconds into at most most buckets, so a
// long run's timeline still fits in the status.
func trafficBuckets(secs []traffic.Second, most int) []v1alpha1.TrafficBucket {
	if len(secs) == 0 {
		return nil
	}
	width := (len(secs) + most - 1) / most
	var out []v1alpha1.TrafficBucket
	for i := 0; i < len(secs); i += width {
		b := v1alpha1.TrafficBucket{Start: metav1.NewTime(secs[i].Start), Status: map[string]int64{}, Errors: map[string]int64{}}
		p99 := 0.0
		for _, s := range secs[i:min(i+width, len(secs))] {
			b.Seconds++
			b.Sent += int64(s.Sent)
			for code, n := range s.Status {
				b.Status[strconv.Itoa(code)] += int64(n)
			}
			for c, n := range s.Errors {
				b.Errors[c] += int64(n)
			}
			p99 = math.Max(p99, s.LatencyP99)
		}
		if p99 > 0 {
			b.LatencyP99 = time.Duration(p99 * float64(time.Second)).Round(time.Microsecond).String()
		}
		out = append(out, b)
	}
	return out
}
