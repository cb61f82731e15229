package controller

import (
	"errors"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"faultline.dev/faultline/analyzers/prometheus"
	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// offlineAPIServer stands for the controller's own /metrics target, which
// only a running controller knows: Precheck checks everything else of
// spec.prometheus.scrape as written.
var offlineAPIServer = &prometheus.Target{URL: "https://kubernetes.default.svc/metrics"}

// Precheck is what the controller checks of an experiment before it asks
// the cluster anything, beyond the spec's own rules (Validate, which the
// CRD's schema also applies): the objectives against the declared
// measurements, a driver for each fault's type, the label selectors, and
// the analyzers' settings as written (the prober's URL, method and
// headers; Prometheus' queries, their names, conditions and limits). The
// controller refuses an experiment that fails it as Invalid at admission;
// `faultline validate` runs it offline, so the same spec is refused before
// a cluster is touched. Each line of the error names its field under spec.
func Precheck(exp *v1alpha1.Experiment) error {
	var errs []error
	if _, err := judge(exp); err != nil {
		errs = append(errs, underSpec(err))
	}
	if _, err := driversOf(exp); err != nil {
		errs = append(errs, err)
	}
	if ps := exp.Spec.Targets.Pods; ps != nil {
		if _, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchLabels: ps.LabelSelectors, MatchExpressions: ps.ExpressionSelectors}); err != nil {
			errs = append(errs, fmt.Errorf("spec.targets.pods.labelSelectors/expressionSelectors: %w", err))
		}
	}
	if nt := exp.Spec.Targets.Nodes; nt != nil && nt.Selector != nil {
		if _, err := metav1LabelSelector(nt); err != nil {
			errs = append(errs, err)
		}
	}
	if exp.Spec.Traffic != nil {
		cfg, _ := TrafficConfig(exp)
		// The network namespace is a path on the controller's node: only
		// the controller can look for it (checkAnalyzers, at plan).
		cfg.Netns = ""
		if err := cfg.Validate(); err != nil {
			errs = append(errs, prefixLines("spec.traffic.", err))
		}
	}
	if exp.Spec.Prometheus != nil {
		if err := PrometheusConfig(exp, offlineAPIServer).Validate(); err != nil {
			errs = append(errs, prefixLines("spec.prometheus.", err))
		}
	}
	return errors.Join(errs...)
}

// underSpec names the judge's fields (objectives[0].expr) from the spec.
func underSpec(err error) error { return prefixLines("spec.", err) }

// prefixLines puts prefix before each line of err, each naming a field
// under it.
func prefixLines(prefix string, err error) error {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return errors.New(strings.Join(lines, "\n"))
}
