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
		if zone == "Local" {
			// time.LoadLocation takes it as the machine's own zone.
			return nil, field.Invalid(spec.Child("timeZone"), zone, "Local is the controller's own zone, not one the schedule can name: give an IANA zone such as Europe/Paris, or leave it empty for UTC")
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

// Validate checks what the Schedule CRD's schema cannot: that the cron
// expression parses and the time zone exists. Everything else, the
// experiments of the template included, the API server checks with the
// CRD's own schema and rules (and `faultline validate` with the same
// code, offline); the controller marks a Schedule that fails this
// Invalid, and `faultline validate` refuses it, naming the field.
func (s *Schedule) Validate() field.ErrorList {
	if _, err := ParseCron(s.Spec.Schedule, s.Spec.TimeZone); err != nil {
		return field.ErrorList{err}
	}
	return nil
}

// String names a run's step for messages.
func (r ScheduleRunRef) String() string {
	if r.Step == "" {
		return r.Experiment
	}
	return fmt.Sprintf("%s (step %s)", r.Experiment, r.Step)
}
