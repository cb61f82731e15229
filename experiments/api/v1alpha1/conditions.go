package v1alpha1

// Condition types of an Experiment's status.
const (
	// ConditionReady is True while the controller can move the experiment
	// along, and False, with a reason naming the step, when it cannot: a
	// write the API server refuses, a target that is gone, an invalid spec.
	// Its message is the API server's or the controller's own words.
	ConditionReady = "Ready"
	// ConditionAcknowledged is True once every agent has acknowledged its
	// faults (or, under chaos-mesh, every Chaos Mesh object exists).
	ConditionAcknowledged = "Acknowledged"
	// ConditionRecovered is True once every fault is reported recovered.
	ConditionRecovered = "Recovered"
	// ConditionAborted is True once an abort was asked for or an abort
	// objective was breached.
	ConditionAborted = "Aborted"
)

// Reasons of the Ready condition, and of the Events that go with them.
const (
	// ReasonProgressing: the controller moves the experiment along.
	ReasonProgressing = "Progressing"
	// ReasonFinished: the experiment has its verdict.
	ReasonFinished = "Finished"
	// ReasonFinalizerNotSet: the API server refused the finalizer, without
	// which no fault may be injected.
	ReasonFinalizerNotSet = "FinalizerNotSet"
	// ReasonFinalizerNotRemoved: the API server refused to remove the
	// finalizer after every fault was recovered.
	ReasonFinalizerNotRemoved = "FinalizerNotRemoved"
	// ReasonStatusNotWritten: the API server refused the status.
	ReasonStatusNotWritten = "StatusNotWritten"
	// ReasonStepFailed: a step (writing assignments, reading targets, ...)
	// failed and is retried; the message says which and why.
	ReasonStepFailed = "StepFailed"
	// ReasonTargetGone: a target the experiment planned on no longer
	// exists.
	ReasonTargetGone = "TargetGone"
)
