package controller

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/sampling"
)

// target is one thing a fault acts on.
type target struct {
	node string
	pod  *corev1.Pod // nil for the node itself
}

func (t target) String() string {
	if t.pod == nil {
		return t.node
	}
	return t.pod.Namespace + "/" + t.pod.Name
}

// SafetyError is a refusal by the safety rules; its message says what to do.
type SafetyError struct{ msg string }

func (e *SafetyError) Error() string { return e.msg }

// resolveTargets lists the experiment's targets, applies the safety rules
// (opted-in namespaces only, no system namespaces unless allowed, the
// blast-radius caps) and chooses among them by spec.targets.mode. It
// returns the targets and what it decided; a random choice's seed goes to
// the status.
func (r *ExperimentReconciler) resolveTargets(ctx context.Context, exp *v1alpha1.Experiment) ([]target, []string, error) {
	return r.chooseTargets(ctx, exp, 1)
}

// chooseTargets is resolveTargets for a round of a fault that acts again
// every interval (PodKill), from 1: each round chooses among the targets
// that match then, from the experiment's seed and the round.
func (r *ExperimentReconciler) chooseTargets(ctx context.Context, exp *v1alpha1.Experiment, round int32) ([]target, []string, error) {
	var out []target
	var candidates int
	var err error
	switch {
	case exp.Spec.Targets.Nodes != nil:
		out, candidates, err = r.nodeTargets(ctx, exp.Spec.Targets.Nodes)
	case exp.Spec.Targets.Pods != nil:
		out, candidates, err = r.podTargets(ctx, exp)
	}
	if err != nil {
		return nil, nil, err
	}
	if len(out) == 0 {
		return nil, nil, &SafetyError{"spec.targets: matches nothing; check the names, selectors and namespaces"}
	}
	// In one order whatever the API server's: a seed replays a choice
	// over the same candidates.
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	limit := len(out)
	s := exp.Spec.SafetyRules()
	if s.MaxTargets != nil && int(*s.MaxTargets) < limit {
		limit = int(*s.MaxTargets)
	}
	if s.MaxTargetPercent != nil {
		if byPct := candidates * int(*s.MaxTargetPercent) / 100; byPct < limit {
			limit = byPct
		}
	}
	if limit == 0 {
		return nil, nil, &SafetyError{fmt.Sprintf("spec.safety: the blast-radius bounds allow no target out of %d (maxTargetPercent %d%% of %d candidates)", len(out), deref(s.MaxTargetPercent), candidates)}
	}
	ts := exp.Spec.Targets
	choice := sampling.Choice{Mode: ts.Mode, Value: deref(ts.Value), Limit: limit}
	switch {
	case choice.Random(len(out)):
		choice.Seed = r.targetSeed(exp)
		if round > 1 {
			choice.Salt = fmt.Sprintf("round %d", round)
		}
	case round == 1:
		exp.Status.TargetSeed = nil // the choice is every target
	}
	idx, asked, err := choice.Indices(len(out))
	if err != nil {
		return nil, nil, err
	}
	var notes []string
	if asked > limit {
		notes = append(notes, fmt.Sprintf("blast radius: %d of %d matching targets kept (spec.safety)", limit, asked))
	}
	chosen := make([]target, len(idx))
	for i, j := range idx {
		chosen[i] = out[j]
	}
	return chosen, notes, nil
}

// nodeTargets are the nodes named or selected, and how many nodes the
// cluster has: maxTargetPercent is a share of them.
func (r *ExperimentReconciler) nodeTargets(ctx context.Context, nt *v1alpha1.NodeTargets) ([]target, int, error) {
	var nodes corev1.NodeList
	if len(nt.Names) > 0 {
		for _, name := range nt.Names {
			var n corev1.Node
			if err := r.Get(ctx, client.ObjectKey{Name: name}, &n); err != nil {
				return nil, 0, fmt.Errorf("spec.targets.nodes.names: node %q: %w", name, err)
			}
			nodes.Items = append(nodes.Items, n)
		}
	} else {
		sel, err := metav1LabelSelector(nt)
		if err != nil {
			return nil, 0, err
		}
		if err := r.List(ctx, &nodes, client.MatchingLabelsSelector{Selector: sel}); err != nil {
			return nil, 0, err
		}
	}
	var all corev1.NodeList
	if err := r.List(ctx, &all); err != nil {
		return nil, 0, err
	}
	out := make([]target, 0, len(nodes.Items))
	for _, n := range nodes.Items {
		out = append(out, target{node: n.Name})
	}
	return out, len(all.Items), nil
}

// podTargets are the pods selected in the namespaces that opted in, and
// how many pods the selectors matched before the finer filters.
func (r *ExperimentReconciler) podTargets(ctx context.Context, exp *v1alpha1.Experiment) ([]target, int, error) {
	ps := exp.Spec.Targets.Pods
	namespaces := ps.Namespaces
	for ns := range ps.Pods {
		if !contains(namespaces, ns) {
			namespaces = append(namespaces, ns)
		}
	}
	if len(namespaces) == 0 {
		namespaces = []string{exp.Namespace}
	}
	sel, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchLabels: ps.LabelSelectors, MatchExpressions: ps.ExpressionSelectors})
	if err != nil {
		return nil, 0, fmt.Errorf("spec.targets.pods.expressionSelectors: %w", err)
	}
	var out []target
	candidates := 0
	for _, ns := range namespaces {
		if err := r.namespaceAllowed(ctx, exp, ns, "spec.targets.pods.namespaces"); err != nil {
			return nil, 0, err
		}
		opts := []client.ListOption{client.InNamespace(ns), client.MatchingLabelsSelector{Selector: sel}}
		if len(ps.FieldSelectors) > 0 {
			opts = append(opts, client.MatchingFields(ps.FieldSelectors))
		}
		var pods corev1.PodList
		if err := r.Reader.List(ctx, &pods, opts...); err != nil {
			return nil, 0, err
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.DeletionTimestamp != nil {
				continue // going: neither a target nor a candidate that raises a share
			}
			candidates++
			if p.Spec.NodeName == "" || !matchesPod(ps.Nodes, ps.Pods, ps.PodPhaseSelectors, ps.AnnotationSelectors, p) {
				continue
			}
			if len(ps.NodeSelectors) > 0 {
				var n corev1.Node
				if err := r.Get(ctx, client.ObjectKey{Name: p.Spec.NodeName}, &n); err != nil || !labels.SelectorFromSet(ps.NodeSelectors).Matches(labels.Set(n.Labels)) {
					continue
				}
			}
			out = append(out, target{node: p.Spec.NodeName, pod: p})
		}
	}
	return out, candidates, nil
}

func deref(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func metav1LabelSelector(nt *v1alpha1.NodeTargets) (labels.Selector, error) {
	sel, err := metav1.LabelSelectorAsSelector(nt.Selector)
	if err != nil {
		return nil, fmt.Errorf("spec.targets.nodes.selector: %w", err)
	}
	return sel, nil
}

// namespaceAllowed applies the namespace rules.
func (r *ExperimentReconciler) namespaceAllowed(ctx context.Context, exp *v1alpha1.Experiment, ns, field string) error {
	if (ns == "kube-system" || ns == r.Namespace) && !exp.Spec.SafetyRules().AllowSystemNamespaces {
		return &SafetyError{fmt.Sprintf("%s: %q is a system namespace; set spec.safety.allowSystemNamespaces: true to target it on purpose", field, ns)}
	}
	var n corev1.Namespace
	if err := r.Get(ctx, client.ObjectKey{Name: ns}, &n); err != nil {
		return fmt.Errorf("%s: namespace %q: %w", field, ns, err)
	}
	if n.Labels[v1alpha1.LabelChaosEnabled] != "enabled" {
		return &SafetyError{fmt.Sprintf("%s: namespace %q has not opted in to chaos experiments; label it first: kubectl label namespace %s %s=enabled", field, ns, ns, v1alpha1.LabelChaosEnabled)}
	}
	return nil
}

func matchesPod(nodes []string, pods map[string][]string, phases []string, annotations map[string]string, p *corev1.Pod) bool {
	if len(nodes) > 0 && !contains(nodes, p.Spec.NodeName) {
		return false
	}
	if len(pods) > 0 && !contains(pods[p.Namespace], p.Name) {
		return false
	}
	if len(phases) > 0 && !contains(phases, string(p.Status.Phase)) {
		return false
	}
	for k, v := range annotations {
		if p.Annotations[k] != v {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// targetSeed is the seed of the experiment's random choices, recorded in
// the status: the spec's, which replays a choice, or one made of the
// experiment's UID, so that a pass retried after a lost write (the faults
// perhaps already handed out) chooses as the first did.
func (r *ExperimentReconciler) targetSeed(exp *v1alpha1.Experiment) int64 {
	seed := sampling.SeedFrom(string(exp.UID))
	if exp.Spec.Targets.Seed != nil {
		seed = *exp.Spec.Targets.Seed
	}
	exp.Status.TargetSeed = ptr.To(seed)
	return seed
}
