package v1alpha1

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	// The zone database is built in, so that a zone the host lacks still
	// validates (and runs) the same everywhere.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// cronShape and zoneShape are the patterns the CRD gives spec.schedule and
// spec.timeZone; the API server cannot parse cron or load a zone, so the
// controller and `faultline validate` do the rest.
var (
	cronShape = regexp.MustCompile(`^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[^\s]+(\s+[^\s]+){4})$`)
	zoneShape = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$`)
	stepName  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$`)
)

// ParseCron reads a Schedule's cron expression in its time zone (UTC when
// empty) with the standard 5-field parser. Its errors name the field.
func ParseCron(expr, zone string) (cron.Schedule, *field.Error) {
	spec := field.NewPath("spec")
	loc := time.UTC
	if zone != "" {
		var err error
		if !zoneShape.MatchString(zone) || len(zone) > 64 {
			return nil, field.Invalid(spec.Child("timeZone"), zone, "not an IANA time zone name, such as Europe/Paris")
		}
		if loc, err = time.LoadLocation(zone); err != nil {
			return nil, field.Invalid(spec.Child("timeZone"), zone, "unknown time zone: "+err.Error())
		}
	}
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return nil, field.Invalid(spec.Child("schedule"), expr, "give the time zone in spec.timeZone, not in the schedule")
	}
	if !cronShape.MatchString(expr) {
		return nil, field.Invalid(spec.Child("schedule"), expr, "a cron expression has 5 fields (minute hour day-of-month month day-of-week) or is one of @yearly, @monthly, @weekly, @daily, @hourly")
	}
	s, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, field.Invalid(spec.Child("schedule"), expr, "not a cron expression: "+err.Error())
	}
	if ss, ok := s.(*cron.SpecSchedule); ok {
		ss.Location = loc
	}
	return s, nil
}

// Validate checks what the Schedule CRD's schema and rules check, and
// what only the controller can (the cron expression parses, the zone
// exists), so that `faultline validate` refuses what the controller would
// mark Invalid, naming the field.
func (s *Schedule) Validate() field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if s.Spec.Schedule == "" {
		errs = append(errs, field.Required(spec.Child("schedule"), "a cron expression, such as `0 3 * * 1-5`"))
	} else if _, err := ParseCron(s.Spec.Schedule, s.Spec.TimeZone); err != nil {
		errs = append(errs, err)
	}
	if d := s.Spec.StartingDeadlineSeconds; d != nil && *d < 0 {
		errs = append(errs, field.Invalid(spec.Child("startingDeadlineSeconds"), *d, "must be at least 0"))
	}
	switch s.Spec.ConcurrencyPolicy {
	case "", ConcurrencyAllow, ConcurrencyForbid, ConcurrencyReplace:
	default:
		errs = append(errs, field.NotSupported(spec.Child("concurrencyPolicy"), s.Spec.ConcurrencyPolicy, []ConcurrencyPolicy{ConcurrencyAllow, ConcurrencyForbid, ConcurrencyReplace}))
	}
	if l := s.Spec.SuccessfulRunsHistoryLimit; l != nil && *l < 0 {
		errs = append(errs, field.Invalid(spec.Child("successfulRunsHistoryLimit"), *l, "must be at least 0"))
	}
	if l := s.Spec.FailedRunsHistoryLimit; l != nil && *l < 0 {
		errs = append(errs, field.Invalid(spec.Child("failedRunsHistoryLimit"), *l, "must be at least 0"))
	}
	tp := spec.Child("template")
	t := s.Spec.Template
	if (t.Experiment == nil) == (t.Gameday == nil) {
		errs = append(errs, field.Invalid(tp, "", "template: set exactly one of experiment or gameday"))
	}
	if t.Experiment != nil {
		errs = append(errs, validateExperimentSpec(*t.Experiment, tp.Child("experiment"))...)
	}
	if g := t.Gameday; g != nil {
		sp := tp.Child("gameday", "steps")
		if len(g.Steps) == 0 {
			errs = append(errs, field.Required(sp, "a gameday has at least 1 step"))
		}
		if len(g.Steps) > 16 {
			errs = append(errs, field.TooMany(sp, len(g.Steps), 16))
		}
		names := map[string]bool{}
		for i, st := range g.Steps {
			p := sp.Index(i)
			if !stepName.MatchString(st.Name) {
				errs = append(errs, field.Invalid(p.Child("name"), st.Name, "1 to 32 lower case letters, digits or '-', starting and ending with a letter or digit"))
			}
			if names[st.Name] {
				errs = append(errs, field.Duplicate(p.Child("name"), st.Name))
			}
			names[st.Name] = true
			switch st.OnFailure {
			case "", OnFailureStop, OnFailureContinue:
			default:
				errs = append(errs, field.NotSupported(p.Child("onFailure"), st.OnFailure, []OnFailure{OnFailureStop, OnFailureContinue}))
			}
			errs = append(errs, validateExperimentSpec(st.Experiment, p.Child("experiment"))...)
		}
	}
	return errs
}

// validateExperimentSpec is Experiment.Validate for a spec inside a
// Schedule, with its field paths under at.
func validateExperimentSpec(es ExperimentSpec, at *field.Path) field.ErrorList {
	errs := (&Experiment{Spec: es}).Validate()
	for _, e := range errs {
		if e.Field == "spec" || strings.HasPrefix(e.Field, "spec.") || strings.HasPrefix(e.Field, "spec[") {
			e.Field = at.String() + strings.TrimPrefix(e.Field, "spec")
		}
	}
	return errs
}

// String names a run's step for messages.
func (r ScheduleRunRef) String() string {
	if r.Step == "" {
		return r.Experiment
	}
	return fmt.Sprintf("%s (step %s)", r.Experiment, r.Step)
}
