package controller

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
	"faultline.dev/faultline/experiments/report"
)

// The report ConfigMap: NAME-report in the experiment's namespace, owned
// by the experiment so that deleting it deletes the report.
const (
	reportSuffix = "-report"
	// ReportKey holds the JSON report in the ConfigMap's data.
	ReportKey = "report.json"
	// LabelReport marks report ConfigMaps, with the experiment's name.
	LabelReport = "faultline.dev/report-of"
	// maxReportBytes keeps the ConfigMap under the API server's 1 MiB
	// object limit with room for its metadata.
	maxReportBytes = 1<<20 - 64<<10
)

// ReportName is the name of an experiment's report ConfigMap.
func ReportName(experiment string) string { return experiment + reportSuffix }

// storeReport writes the experiment's report once its verdict is final.
// The report of a finished experiment never changes, so one that exists
// is kept: calling it again (a retry, a restart) costs one refused create.
func (r *ExperimentReconciler) storeReport(ctx context.Context, exp *v1alpha1.Experiment) error {
	cm, err := reportConfigMap(exp, r.Scheme())
	if err != nil {
		return err
	}
	if err := r.Create(ctx, cm); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("report ConfigMap %s: %w", cm.Name, err)
	}
	return nil
}

// reportConfigMap is the experiment's report as a ConfigMap, trimmed to
// fit: the per-second traffic goes first (its totals stay in the
// measurements), then the oldest timeline, records and evictions; the
// report says what it lost.
func reportConfigMap(exp *v1alpha1.Experiment, scheme *runtime.Scheme) (*corev1.ConfigMap, error) {
	rep := report.FromExperiment(exp)
	trims := []func(){
		func() {
			if rep.Traffic != nil && len(rep.Traffic.Buckets) > 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("traffic over time dropped (%d buckets) to fit the report ConfigMap; the Experiment's status and faultline report have it", len(rep.Traffic.Buckets)))
				rep.Traffic.Buckets = nil
			}
		},
		func() {
			if n := len(rep.Timeline); n > 20 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("timeline cut to its last 20 of %d entries to fit the report ConfigMap", n))
				rep.Timeline = rep.Timeline[n-20:]
			}
		},
		func() {
			if len(rep.Records)+len(rep.Evictions)+len(rep.Taints) > 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%d records, %d evictions and %d taint changes dropped to fit the report ConfigMap", len(rep.Records), len(rep.Evictions), len(rep.Taints)))
				rep.Records, rep.Evictions, rep.Taints = nil, nil, nil
			}
		},
	}
	b, err := json.Marshal(rep)
	for i := 0; err == nil && len(b) > maxReportBytes && i < len(trims); i++ {
		trims[i]()
		b, err = json.Marshal(rep)
	}
	if err != nil {
		return nil, err
	}
	if len(b) > maxReportBytes {
		return nil, fmt.Errorf("report of %s: %d bytes even trimmed, more than a ConfigMap holds", exp.Name, len(b))
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: exp.Namespace,
			Name:      ReportName(exp.Name),
			Labels: map[string]string{
				LabelReport:                    exp.Name,
				v1alpha1.LabelExperiment:       string(exp.UID),
				"app.kubernetes.io/managed-by": "faultline",
			},
			Annotations: map[string]string{"faultline.dev/report-api-version": report.APIVersion},
		},
		Data: map[string]string{ReportKey: string(b)},
	}
	if err := controllerutil.SetControllerReference(exp, cm, scheme); err != nil {
		return nil, err
	}
	return cm, nil
}
