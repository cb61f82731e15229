package controller

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

// Metrics are the controller's Prometheus metrics.
type Metrics struct {
	Experiments      *prometheus.GaugeVec
	Verdicts         *prometheus.CounterVec
	ActiveFaults     prometheus.Gauge
	InjectionLatency prometheus.Histogram
	RecoveryLatency  prometheus.Histogram
	mu               sync.Mutex
	phases           map[string]v1alpha1.Phase
}

// NewMetrics registers the metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Experiments:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "faultline_experiments", Help: "Experiments by phase."}, []string{"phase"}),
		Verdicts:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "faultline_experiment_verdicts_total", Help: "Experiments judged, by verdict."}, []string{"verdict"}),
		ActiveFaults: prometheus.NewGauge(prometheus.GaugeOpts{Name: "faultline_active_faults", Help: "Experiments whose faults are assigned and not yet recovered."}),
		InjectionLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "faultline_injection_latency_seconds",
			Help: "From a fault's start time to the agent's report that it is in place.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 10)}),
		RecoveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "faultline_recovery_latency_seconds",
			Help: "From a fault's deadline to the agent's report that it is recovered.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 10)}),
		phases: map[string]v1alpha1.Phase{},
	}
	reg.MustRegister(m.Experiments, m.Verdicts, m.ActiveFaults, m.InjectionLatency, m.RecoveryLatency)
	return m
}

func (m *Metrics) phaseChanged(exp *v1alpha1.Experiment) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := string(exp.UID)
	if old, ok := m.phases[key]; ok {
		m.Experiments.WithLabelValues(string(old)).Dec()
	}
	m.phases[key] = exp.Status.Phase
	m.Experiments.WithLabelValues(string(exp.Status.Phase)).Inc()
	active := 0
	for _, p := range m.phases {
		if p == v1alpha1.PhaseInjecting || p == v1alpha1.PhaseRunning || p == v1alpha1.PhaseRecovering {
			active++
		}
	}
	m.ActiveFaults.Set(float64(active))
}

func (m *Metrics) verdict(exp *v1alpha1.Experiment) {
	m.Verdicts.WithLabelValues(string(exp.Status.Verdict)).Inc()
}
