package schedule

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the Schedule controller.
type Metrics struct {
	// RunsStarted counts runs started on schedule, by Schedule.
	RunsStarted *prometheus.CounterVec
	// RunsSkipped counts slots that started no run, by reason:
	// ConcurrencyForbid, StartingDeadline, Missed (an older slot when a
	// later one was due).
	RunsSkipped *prometheus.CounterVec
	// RunVerdicts counts finished runs by verdict.
	RunVerdicts *prometheus.CounterVec
	// Missed is each Schedule's count of missed slots at its last slot.
	Missed *prometheus.GaugeVec
}

// NewMetrics registers the Schedule controller's metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		RunsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "faultline_schedule_runs_started_total", Help: "Runs started by Schedules."}, []string{"namespace", "schedule"}),
		RunsSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "faultline_schedule_runs_skipped_total", Help: "Schedule slots that started no run, by reason."}, []string{"reason"}),
		RunVerdicts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "faultline_schedule_run_verdicts_total", Help: "Finished Schedule runs, by verdict."}, []string{"verdict"}),
		Missed:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "faultline_schedule_missed_schedules", Help: "Slots a Schedule missed (not started because a later one was due) at its last slot."}, []string{"namespace", "schedule"}),
	}
	reg.MustRegister(m.RunsStarted, m.RunsSkipped, m.RunVerdicts, m.Missed)
	return m
}
