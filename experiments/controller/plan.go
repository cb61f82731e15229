package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// refusal ends an experiment in Error before anything is injected: its
// reason is the Event's and the Ready condition's, its message names the
// field and what to do.
type refusal struct{ reason, msg string }

func (e *refusal) Error() string { return e.msg }

// refuse makes err a refusal with reason, or with Refused when the safety
// rules made it.
func refuse(reason string, err error) error {
	if err == nil {
		return nil
	}
	var se *SafetyError
	if errors.As(err, &se) {
		reason = v1alpha1.ReasonRefused
	}
	return &refusal{reason: reason, msg: err.Error()}
}

// plan checks the experiment, resolves its targets under the safety
// rules, has each family check its faults against the cluster, and hands
// the faults to the engine.
func (r *ExperimentReconciler) plan(ctx context.Context, exp *v1alpha1.Experiment) (ctrl.Result, error) {
	if exp.Status.Phase == "" {
		r.setPhase(exp, v1alpha1.PhasePending)
		r.note(exp, false, v1alpha1.ReasonAccepted, "experiment accepted: %d fault(s), %d objective(s)", len(exp.Spec.Faults), len(exp.Spec.Objectives))
	}
	if exp.AbortRequested() {
		r.fail(exp, v1alpha1.PhaseAborted, v1alpha1.VerdictFailed, v1alpha1.ReasonAborted, "aborted before any fault was injected")
		return ctrl.Result{}, nil
	}
	eng := r.engineFor(exp)
	err := r.admit(ctx, exp)
	if err == nil {
		if ok, aerr := eng.Available(exp); !ok {
			return ctrl.Result{}, aerr
		}
	}
	var p *faultPlan
	if err == nil {
		p, err = r.resolve(ctx, exp, eng)
	}
	var refused *refusal
	if errors.As(err, &refused) {
		r.fail(exp, v1alpha1.PhaseError, v1alpha1.VerdictError, refused.reason, refused.msg)
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err // tried again on the next pass
	}
	if exp.Spec.DryRun {
		r.setPhase(exp, v1alpha1.PhasePassed)
		exp.Status.Verdict = v1alpha1.VerdictInconclusive
		exp.Status.Message = fmt.Sprintf("dry run: would inject %d fault(s) into %s", len(exp.Spec.Faults), strings.Join(exp.Status.Targets, ", "))
		r.note(exp, false, v1alpha1.ReasonDryRun, "%s", exp.Status.Message)
		return ctrl.Result{}, nil
	}
	if err := r.start(ctx, exp, eng, p); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: time.Second}, nil
}

// admit refuses a spec that cannot run, or any experiment while the kill
// switch is on. An invalid spec says so whatever else holds: the kill
// switch comes second. The spec's own rules are the CRD's, which the API
// server applied before the controller saw it; Precheck is what the
// schema cannot say.
func (r *ExperimentReconciler) admit(ctx context.Context, exp *v1alpha1.Experiment) error {
	if err := Precheck(exp); err != nil {
		return refuse(v1alpha1.ReasonInvalid, err)
	}
	if r.killSwitchOn(ctx) {
		return refuse(v1alpha1.ReasonKillSwitch, fmt.Errorf("the kill switch is on (ConfigMap %s/%s): no experiment may start", r.Namespace, KillSwitch))
	}
	return nil
}

// resolve is what plan learns of the cluster before anything is injected:
// the targets, the traffic's and Prometheus' settings, each family's own
// checks, the workloads named, and what the engine refuses.
func (r *ExperimentReconciler) resolve(ctx context.Context, exp *v1alpha1.Experiment, eng Engine) (*faultPlan, error) {
	p := &faultPlan{}
	if err := r.resolveTargetsOf(ctx, exp, p); err != nil {
		return nil, err
	}
	if err := r.checkAnalyzers(ctx, exp); err != nil {
		return nil, err
	}
	ds, _ := driversOf(exp) // admit checked them
	for _, d := range ds {
		if err := d.Plan(ctx, r, exp, p); transient(err) {
			return nil, err
		} else if err != nil {
			return nil, refuse(v1alpha1.ReasonInvalid, err)
		}
	}
	for _, n := range p.notes {
		r.note(exp, true, v1alpha1.ReasonBlastRadius, "%s", n)
	}
	named, err := r.namedWorkloads(ctx, exp)
	if err != nil {
		return nil, refuse(v1alpha1.ReasonInvalid, err)
	}
	p.workloads = mergeSorted(p.workloads, named)
	if err := eng.Check(ctx, exp, p); transient(err) {
		return nil, err
	} else if err != nil {
		return nil, refuse(v1alpha1.ReasonInvalid, err)
	}
	return p, nil
}

// resolveTargetsOf fills the plan's targets (pods or nodes), or its
// Deployment, and the status's list of them.
func (r *ExperimentReconciler) resolveTargetsOf(ctx context.Context, exp *v1alpha1.Experiment, p *faultPlan) error {
	if exp.Spec.Targets.Deployment != "" {
		d, err := r.resolveDeployment(ctx, exp)
		if err != nil {
			return refuse(v1alpha1.ReasonTargetsUnresolved, err)
		}
		p.deployment = d
		p.workloads = []string{d.Namespace + "/" + d.Name}
		exp.Status.Targets = []string{"Deployment " + d.Namespace + "/" + d.Name}
		exp.Status.Workloads = p.workloads
		return nil
	}
	targets, notes, err := r.resolveTargets(ctx, exp)
	if err != nil {
		return refuse(v1alpha1.ReasonTargetsUnresolved, err)
	}
	p.targets, p.notes = targets, notes
	exp.Status.Targets = nil
	for _, t := range targets {
		exp.Status.Targets = append(exp.Status.Targets, t.String())
	}
	if seed := exp.Status.TargetSeed; seed != nil {
		mode := exp.Spec.Targets.Mode
		if mode == "" {
			mode = v1alpha1.TargetModeAll
		}
		r.note(exp, false, v1alpha1.ReasonTargetsChosen, "%d target(s) chosen at random (mode %s, seed %d): status.targets lists them; spec.targets.seed: %d chooses them again from the same candidates",
			len(targets), mode, *seed, *seed)
	}
	return nil
}

// checkAnalyzers checks what the analyzers are given: the traffic's URL
// (a Service resolved to its ClusterIP) and settings, Prometheus' queries.
func (r *ExperimentReconciler) checkAnalyzers(ctx context.Context, exp *v1alpha1.Experiment) error {
	if exp.Spec.Traffic != nil {
		u, err := r.resolveServiceURL(ctx, exp.Spec.Traffic.URL)
		if err != nil {
			return refuse(v1alpha1.ReasonInvalid, fmt.Errorf("spec.traffic.url: %w", err))
		}
		exp.Status.TrafficURL = u
		cfg, _ := TrafficConfig(exp)
		if err := cfg.Validate(); err != nil {
			return refuse(v1alpha1.ReasonInvalid, prefixLines("spec.traffic.", err))
		}
	}
	if exp.Spec.Prometheus != nil {
		if err := PrometheusConfig(exp, r.Analysis.APIServer).Validate(); err != nil {
			return refuse(v1alpha1.ReasonInvalid, prefixLines("spec.prometheus.", err))
		}
	}
	return nil
}

// start sets the experiment's start, hands the faults to the engine and
// starts the analyzers.
func (r *ExperimentReconciler) start(ctx context.Context, exp *v1alpha1.Experiment, eng Engine, p *faultPlan) error {
	if len(p.targets) > 0 {
		on, err := r.workloadsOn(ctx, p.targets)
		if err != nil {
			return err
		}
		exp.Status.Workloads = on
	}
	exp.Status.Workloads = mergeSorted(exp.Status.Workloads, p.workloads)
	start, err := r.startTime(ctx, exp)
	if err != nil {
		return err
	}
	exp.Status.StartTime = &start
	if err := eng.Start(ctx, exp, p); err != nil {
		return err
	}
	if err := r.Analysis.Ensure(ctx, r.Client, exp); err != nil {
		return err
	}
	r.setPhase(exp, v1alpha1.PhaseInjecting)
	if exp.Spec.Traffic != nil {
		r.note(exp, false, v1alpha1.ReasonTrafficStarted, "traffic at %d req/s to %s; baseline until %s", exp.Spec.Traffic.Rate, exp.Spec.Traffic.URL, start.Format(time.TimeOnly))
	}
	r.note(exp, false, v1alpha1.ReasonInjecting, "%d fault(s) planned on %s from %s", len(exp.Spec.Faults), strings.Join(exp.Status.Targets, ", "), start.Format(time.TimeOnly))
	return nil
}

// startTime is when the first fault starts: now, after the baseline the
// analyzers measure first. A retry after a lost status write keeps the
// start (and so the deadlines) that agents may already hold.
func (r *ExperimentReconciler) startTime(ctx context.Context, exp *v1alpha1.Experiment) (metav1.Time, error) {
	start := r.now()
	if baseline, _ := exp.Spec.Windows(); baseline > 0 {
		start = metav1.NewTime(start.Add(baseline))
	}
	fas, err := r.assignments(ctx, exp)
	if err != nil {
		return start, err
	}
	for _, fa := range fas {
		for _, f := range fa.Spec.Faults {
			if f.StartAt.Before(&start) {
				start = f.StartAt
			}
		}
	}
	return start, nil
}

// workloadsOn lists the Deployments with pods on the target nodes.
func (r *ExperimentReconciler) workloadsOn(ctx context.Context, ts []target) ([]string, error) {
	nodes := map[string]bool{}
	for _, n := range nodesOf(ts) {
		nodes[n] = true
	}
	var pods corev1.PodList
	if err := r.List(ctx, &pods); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, p := range pods.Items {
		if !nodes[p.Spec.NodeName] {
			continue
		}
		for _, o := range p.OwnerReferences {
			if o.Kind != "ReplicaSet" {
				continue
			}
			var rs appsv1.ReplicaSet
			if err := r.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: o.Name}, &rs); err != nil {
				continue
			}
			for _, ro := range rs.OwnerReferences {
				if ro.Kind == "Deployment" {
					seen[p.Namespace+"/"+ro.Name] = true
				}
			}
		}
	}
	return mergeSorted(nil, keysOf(seen)), nil
}

func keysOf(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// namedWorkloads checks the Deployments spec.workloads names: each must be
// in the experiment's namespace.
func (r *ExperimentReconciler) namedWorkloads(ctx context.Context, exp *v1alpha1.Experiment) ([]string, error) {
	var out []string
	for i, name := range exp.Spec.Workloads {
		var d appsv1.Deployment
		if err := r.Reader.Get(ctx, client.ObjectKey{Namespace: exp.Namespace, Name: name}, &d); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("spec.workloads[%d]: Deployment %q not found in namespace %q; name Deployments of the experiment's namespace", i, name, exp.Namespace)
			}
			return nil, fmt.Errorf("spec.workloads[%d]: %w", i, err)
		}
		out = append(out, exp.Namespace+"/"+name)
	}
	return out, nil
}
