package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConcurrencyPolicy says what a Schedule does when a slot comes while an
// earlier run is still active.
// +kubebuilder:validation:Enum=Allow;Forbid;Replace
type ConcurrencyPolicy string

const (
	// ConcurrencyAllow starts the new run alongside the active ones.
	ConcurrencyAllow ConcurrencyPolicy = "Allow"
	// ConcurrencyForbid skips the slot while a run is active.
	ConcurrencyForbid ConcurrencyPolicy = "Forbid"
	// ConcurrencyReplace aborts the active runs (deleting their Experiments,
	// whose finalizer recovers the faults) and starts the new one.
	ConcurrencyReplace ConcurrencyPolicy = "Replace"
)

// OnFailure says what a gameday does after a step that did not pass.
// +kubebuilder:validation:Enum=Stop;Continue
type OnFailure string

const (
	// OnFailureStop ends the run: later steps are not created (Skipped).
	OnFailureStop OnFailure = "Stop"
	// OnFailureContinue goes on with the next step.
	OnFailureContinue OnFailure = "Continue"
)

// Labels and annotations of the Experiments a Schedule creates.
const (
	// LabelSchedule names the Schedule (hashed when longer than 63).
	LabelSchedule = "faultline.dev/schedule"
	// LabelScheduleRun names the run: SCHEDULE-<unix minutes of the slot>.
	LabelScheduleRun = "faultline.dev/schedule-run"
	// LabelScheduleSlot is the slot's time in unix minutes.
	LabelScheduleSlot = "faultline.dev/schedule-slot"
	// LabelScheduleStep is the gameday step's name.
	LabelScheduleStep = "faultline.dev/schedule-step"
	// AnnotationScheduledAt is the slot's time, RFC 3339.
	AnnotationScheduledAt = "faultline.dev/scheduled-at"
	// AnnotationTrigger is "manual" on runs started by `faultline schedule
	// trigger`, as kubectl create job --from=cronjob marks its Jobs.
	AnnotationTrigger = "faultline.dev/schedule-trigger"
)

// Schedule condition types and reasons.
const (
	// ScheduleReady is True while the spec is valid and slots are followed.
	ScheduleReady = "Ready"
	// ScheduleInvalid is True when the spec cannot be run; its reason names
	// the field (InvalidSchedule, InvalidTimeZone, InvalidTemplate).
	ScheduleInvalid = "Invalid"
)

// ScheduleSpec runs an experiment, or a gameday of several, on a cron
// schedule, with the CronJob controller's semantics.
type ScheduleSpec struct {
	// Schedule is a standard 5-field cron expression (minute hour
	// day-of-month month day-of-week, such as `30 2 * * 1-5`) or one of
	// @yearly, @monthly, @weekly, @daily, @hourly, read in timeZone.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[^\s]+(\s+[^\s]+){4})$`
	Schedule string `json:"schedule"`

	// TimeZone is the IANA name of the zone the schedule is read in, such
	// as Europe/Paris or America/New_York; UTC when empty. As with a
	// CronJob, across daylight saving changes a time that does not exist
	// that day (02:30 when clocks go forward) is skipped, and a time that
	// happens twice (01:30 when they go back) runs at both. Local is
	// refused, as a CronJob refuses it: it is the controller's own zone,
	// which moves with the machine it runs on.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$`
	// +kubebuilder:validation:XValidation:rule="self != 'Local'",message="Local is the controller's own zone, not one the schedule can name: give an IANA zone such as Europe/Paris, or leave it empty for UTC"
	TimeZone string `json:"timeZone,omitempty"`

	// StartingDeadlineSeconds is how late a run may still start after its
	// slot (the controller was down, say). Slots older than this are
	// missed; without it, any missed slot since the last may start.
	// +optional
	// +kubebuilder:validation:Minimum=0
	StartingDeadlineSeconds *int64 `json:"startingDeadlineSeconds,omitempty"`

	// ConcurrencyPolicy is what a slot does while an earlier run is still
	// active: Allow (start anyway), Forbid (skip the slot) or Replace
	// (abort the active run, recovering its faults, then start). Forbid
	// when empty: two experiments on the same targets would blur each
	// other's verdicts.
	// +optional
	// +kubebuilder:default=Forbid
	ConcurrencyPolicy ConcurrencyPolicy `json:"concurrencyPolicy,omitempty"`

	// Suspend stops new runs; active runs go on to their end.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// SuccessfulRunsHistoryLimit is how many finished runs that passed are
	// kept (their Experiments); older ones are deleted.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	SuccessfulRunsHistoryLimit *int32 `json:"successfulRunsHistoryLimit,omitempty"`

	// FailedRunsHistoryLimit is how many finished runs that did not pass
	// are kept; older ones are deleted.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	FailedRunsHistoryLimit *int32 `json:"failedRunsHistoryLimit,omitempty"`

	// Template is what each run does: one experiment, or a gameday.
	// +required
	Template ScheduleTemplate `json:"template"`
}

// ScheduleTemplate is one experiment or a gameday of several.
// +kubebuilder:validation:XValidation:rule="has(self.experiment) != has(self.gameday)",message="template: set exactly one of experiment or gameday"
type ScheduleTemplate struct {
	// Experiment each run creates, named SCHEDULE-<unix minutes of the
	// slot>.
	// +optional
	Experiment *ExperimentSpec `json:"experiment,omitempty"`

	// Gameday is several experiments run in order, one at a time.
	// +optional
	Gameday *Gameday `json:"gameday,omitempty"`
}

// Gameday is experiments run one after another: a step starts when the
// one before is final.
type Gameday struct {
	// Steps in order. Each step's Experiment is named
	// SCHEDULE-<unix minutes>-STEP.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Steps []GamedayStep `json:"steps"`
}

// GamedayStep is one experiment of a gameday.
type GamedayStep struct {
	// Name of the step within the gameday.
	// +required
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$`
	Name string `json:"name"`

	// Experiment the step runs.
	// +required
	Experiment ExperimentSpec `json:"experiment"`

	// OnFailure is what happens when the step does not pass (Failed,
	// Aborted or Error): Stop ends the run and later steps are Skipped;
	// Continue goes on. Stop when empty.
	// +optional
	// +kubebuilder:default=Stop
	OnFailure OnFailure `json:"onFailure,omitempty"`
}

// ScheduleStatus is what the Schedule has run.
type ScheduleStatus struct {
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, and Invalid with the reason and the field.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// LastScheduleTime is the slot of the last run started on schedule.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`

	// LastSkippedTime is the last slot skipped (Forbid, or past the
	// starting deadline); later slots are counted from it too.
	// +optional
	LastSkippedTime *metav1.Time `json:"lastSkippedTime,omitempty"`

	// LastSuccessfulTime is the slot of the last run that passed.
	// +optional
	LastSuccessfulTime *metav1.Time `json:"lastSuccessfulTime,omitempty"`

	// ActiveCount is the number of active runs.
	// +optional
	ActiveCount int32 `json:"activeCount"`

	// Active runs, with the step each is at.
	// +optional
	Active []ScheduleRunRef `json:"active,omitempty"`

	// LastVerdicts of the last finished runs, newest first (at most 10).
	// +optional
	// +kubebuilder:validation:MaxItems=10
	LastVerdicts []ScheduleRunResult `json:"lastVerdicts,omitempty"`

	// MissedSchedules is how many slots were missed at the last slot:
	// when several were due (the controller was down) only the most recent
	// starts; above 100 a Warning TooManyMissedTimes is recorded.
	// +optional
	MissedSchedules int32 `json:"missedSchedules,omitempty"`
}

// ScheduleRunRef is an active run.
type ScheduleRunRef struct {
	// Run is the run's name, SCHEDULE-<unix minutes>.
	Run string `json:"run"`
	// Slot is the scheduled time the run is for.
	Slot metav1.Time `json:"slot"`
	// Step is the gameday step running; empty for a single experiment.
	// +optional
	Step string `json:"step,omitempty"`
	// Experiment running now.
	Experiment string `json:"experiment"`
	// Manual is true for a run started by `faultline schedule trigger`.
	// +optional
	Manual bool `json:"manual,omitempty"`
}

// ScheduleRunResult is a finished run.
type ScheduleRunResult struct {
	// Run is the run's name.
	Run string `json:"run"`
	// Slot is the scheduled time the run was for.
	Slot metav1.Time `json:"slot"`
	// Verdict: Passed when every step passed, Error when one ended in
	// Error, else Failed; Inconclusive when the run was replaced.
	Verdict Verdict `json:"verdict"`
	// Manual is true for a run started by `faultline schedule trigger`.
	// +optional
	Manual bool `json:"manual,omitempty"`
	// Message says why a run did not pass.
	// +optional
	Message string `json:"message,omitempty"`
	// Steps and their verdicts, for a gameday.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Steps []StepResult `json:"steps,omitempty"`
}

// StepResult is a gameday step's outcome.
type StepResult struct {
	// Name of the step.
	Name string `json:"name"`
	// Experiment the step created; empty when Skipped.
	// +optional
	Experiment string `json:"experiment,omitempty"`
	// Phase the step's Experiment ended in, or Skipped.
	Phase string `json:"phase"`
	// Verdict of the step's Experiment.
	// +optional
	Verdict Verdict `json:"verdict,omitempty"`
}

// StepSkipped is the phase of a gameday step not run because an earlier
// step with onFailure Stop did not pass.
const StepSkipped = "Skipped"

// Schedule runs an experiment or a gameday on a cron schedule, as a
// CronJob runs Jobs.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=fls;fsched,categories=faultline
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="Time Zone",type=string,JSONPath=`.spec.timeZone`
// +kubebuilder:printcolumn:name="Suspend",type=boolean,JSONPath=`.spec.suspend`
// +kubebuilder:printcolumn:name="Active",type=integer,JSONPath=`.status.activeCount`
// +kubebuilder:printcolumn:name="Last Schedule",type=date,JSONPath=`.status.lastScheduleTime`
// +kubebuilder:printcolumn:name="Last Verdict",type=string,JSONPath=`.status.lastVerdicts[0].verdict`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Schedule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is when to run and what.
	// +required
	Spec ScheduleSpec `json:"spec"`
	// Status is what ran.
	// +optional
	Status ScheduleStatus `json:"status,omitempty"`
}

// ScheduleList is a list of Schedules.
// +kubebuilder:object:root=true
type ScheduleList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Schedule `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Schedule{}, &ScheduleList{})
}
