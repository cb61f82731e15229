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

// Reasons of the Events and timeline entries of an Experiment (Warning
// where noted), and of its conditions.
const (
	ReasonAccepted           = "Accepted"           // taken up: faults and objectives counted
	ReasonInvalid            = "Invalid"            // Warning: the spec, or what it names, cannot run
	ReasonRefused            = "Refused"            // Warning: a safety rule refused the targets
	ReasonTargetsUnresolved  = "TargetsUnresolved"  // Warning: the targets could not be listed
	ReasonKillSwitch         = "KillSwitch"         // Warning: the kill switch refused or stopped it
	ReasonEngineUnavailable  = "EngineUnavailable"  // Warning: spec.engine cannot run in this cluster
	ReasonBlastRadius        = "BlastRadius"        // Warning: the safety rules left targets out
	ReasonDryRun             = "DryRun"             // a dry run's targets
	ReasonTargetsChosen      = "TargetsChosen"      // some of the matching targets chosen at random, with the seed
	ReasonPodsKilled         = "PodsKilled"         // a PodKill round: which pods, how
	ReasonTrafficStarted     = "TrafficStarted"     // the prober started, its baseline first
	ReasonInjecting          = "Injecting"          // the faults are handed over
	ReasonRunning            = "Running"            // every fault is in place
	ReasonInjected           = "Injected"           // one fault on one target
	ReasonRecovered          = "Recovered"          // one fault on one target
	ReasonFaultEffect        = "FaultEffect"        // what a fault did (a stressor's size, Chaos Mesh's report)
	ReasonFaultError         = "FaultError"         // Warning: a fault that could not be injected
	ReasonFaultSuperseded    = "FaultSuperseded"    // Warning: a signal whose pod was already going
	ReasonAborting           = "Aborting"           // Warning: an abort recovers every fault
	ReasonAborted            = "Aborted"            // Warning: the end of an aborted experiment
	ReasonRecovering         = "Recovering"         // every deadline has passed
	ReasonRecoveryUnreported = "RecoveryUnreported" // Warning: an agent has not reported its recovery
	ReasonAnalyzing          = "Analyzing"          // waiting for nodes and workloads to recover
	ReasonNotRecovered       = "NotRecovered"       // Warning: nodes or workloads did not recover in time
	ReasonNodeNotReady       = "NodeNotReady"       // Warning: a node went NotReady
	ReasonNodeReady          = "NodeReady"          // a node is Ready again
	ReasonTainted            = "Tainted"            // Warning: a node got a taint
	ReasonUntainted          = "Untainted"          // a node lost a taint
	ReasonEvicted            = "Evicted"            // Warning: a pod was evicted

	ReasonRolloutTriggered       = "RolloutTriggered"       // the rollout faultline started
	ReasonRolloutWaiting         = "RolloutWaiting"         // waiting for someone else's rollout
	ReasonRolloutStarted         = "RolloutStarted"         // its new ReplicaSet appeared
	ReasonRolloutProgress        = "RolloutProgress"        // pods Ready, updated, available
	ReasonRolloutStalled         = "RolloutStalled"         // Warning: ProgressDeadlineExceeded
	ReasonRolloutPointWaiting    = "RolloutPointWaiting"    // the point is reached, no Ready pod yet
	ReasonRolloutPointReached    = "RolloutPointReached"    // the action happened (Warning: with nothing to act on)
	ReasonRolloutPointNotReached = "RolloutPointNotReached" // Warning: the rollout never got there
	ReasonRolloutComplete        = "RolloutComplete"        // the rollout ended
	ReasonRolloutError           = "RolloutError"           // Warning: a rollout step failed, retried
	ReasonSurgeError             = "SurgeError"             // Warning: a surge step failed, retried
	ReasonSurgeOrphan            = "SurgeOrphan"            // Warning: a mark left by a gone experiment, taken over
	ReasonChaosMeshError         = "ChaosMeshError"         // Warning: a Chaos Mesh step failed, retried
	ReasonChaosMeshCreated       = "ChaosMeshCreated"       // a fault's Chaos Mesh object
	ReasonChaosMeshDeleted       = "ChaosMeshDeleted"       // a fault's Chaos Mesh object

	// Reasons of the Acknowledged condition.
	ReasonAgentsAcknowledged      = "AgentsAcknowledged"
	ReasonChaosMeshObjectsCreated = "ChaosMeshObjectsCreated"
	ReasonChaosMeshObjectsFailed  = "ChaosMeshObjectsFailed"
	// Reason of the Recovered condition.
	ReasonAgentsReported = "AgentsReported"
	// Reason of the Aborted condition.
	ReasonAbort = "Abort"
)

// Reasons of a Schedule's Events and of its conditions.
const (
	ReasonScheduled          = "Scheduled"          // following its cron
	ReasonSuspended          = "Suspended"          // no new runs
	ReasonRunStarted         = "RunStarted"         // a slot's run
	ReasonStepStarted        = "StepStarted"        // a gameday's next step
	ReasonReplaced           = "Replaced"           // a run aborted for the next (Replace)
	ReasonTooManyMissedTimes = "TooManyMissedTimes" // Warning: more than 100 missed slots
	ReasonRunFinished        = "RunFinished"        // a run's verdict (Warning unless Passed)
	ReasonStartingDeadline   = "StartingDeadline"   // Warning: a slot missed past startingDeadlineSeconds
	ReasonConcurrencyForbid  = "ConcurrencyForbid"  // a slot skipped while a run is active
	ReasonInvalidSchedule    = "InvalidSchedule"    // Warning: spec.schedule cannot be read
	ReasonInvalidTimeZone    = "InvalidTimeZone"    // Warning: spec.timeZone is no IANA zone
)
