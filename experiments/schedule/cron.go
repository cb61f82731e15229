// Package schedule is faultline's Schedule controller: it starts an
// experiment, or a gameday of several, at each slot of a cron schedule,
// with the CronJob controller's semantics (missed slots, a starting
// deadline, a concurrency policy, suspend, history limits).
//
// The cron math is pure functions of a cron.Schedule and times, so that
// tests drive it with a fake clock.
package schedule

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// TooManyMissed is the number of missed slots above which a Schedule
// records the Warning TooManyMissedTimes (the CronJob controller's bound).
// Only the most recent slot ever starts.
const TooManyMissed = 100

// countCap bounds the counting of missed slots; beyond it the count is
// reported as countCap and the most recent slot is found by bisection.
const countCap = 10000

// Due is what a reconcile at a time finds of a schedule's slots.
type Due struct {
	// Slot is the most recent slot not yet handled, if any.
	Slot *time.Time
	// Missed is how many slots were due (Slot included), counted up to
	// countCap.
	Missed int
	// TooMany is Missed > TooManyMissed.
	TooMany bool
	// Next is the first slot after now: when to look again.
	Next time.Time
}

// Earliest is where slots are counted from, as the CronJob controller's
// mostRecentScheduleTime: the later of the last handled slot (or the
// creation) and, with a starting deadline, now minus the deadline.
func Earliest(created time.Time, lastHandled *time.Time, startingDeadline *time.Duration, now time.Time) time.Time {
	earliest := created
	if lastHandled != nil && lastHandled.After(earliest) {
		earliest = *lastHandled
	}
	if startingDeadline != nil {
		if d := now.Add(-*startingDeadline); d.After(earliest) {
			earliest = d
		}
	}
	return earliest
}

// Slots finds the slots of s in (earliest, now]: the most recent starts,
// the others are missed.
func Slots(s cron.Schedule, earliest, now time.Time) Due {
	d := Due{Next: s.Next(now)}
	t := s.Next(earliest)
	if t.IsZero() || t.After(now) {
		return d
	}
	last := t
	n := 1
	for ; n < countCap; n++ {
		nt := s.Next(last)
		if nt.IsZero() || nt.After(now) {
			break
		}
		last = nt
	}
	if n == countCap {
		last = mostRecent(s, earliest, now)
	}
	d.Slot, d.Missed, d.TooMany = &last, n, n > TooManyMissed
	return d
}

// mostRecent is the latest slot of s in (earliest, now], given one exists:
// the smallest lookback d for which a slot falls in (now-d, now], by
// bisection over whole seconds (slots are whole minutes).
func mostRecent(s cron.Schedule, earliest, now time.Time) time.Time {
	lo, hi := time.Duration(0), now.Sub(earliest) // no slot in (now-lo, now]; one in (now-hi, now]
	for hi-lo > time.Second {
		mid := lo + (hi-lo)/2
		if t := s.Next(now.Add(-mid)); !t.After(now) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return s.Next(now.Add(-hi))
}

// TooLate says a slot is past its starting deadline.
func TooLate(slot time.Time, startingDeadline *time.Duration, now time.Time) bool {
	return startingDeadline != nil && slot.Add(*startingDeadline).Before(now)
}

// maxName is the longest name an Experiment gets: its name is a label
// value on what it makes (reports, Chaos Mesh objects).
const maxName = 63

// fit shortens a name to maxName characters, keeping it unique with a
// hash of the whole.
func fit(name string) string {
	if len(name) <= maxName {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:])[:10]
	prefix := strings.TrimRight(name[:maxName-len(h)-1], "-.")
	return prefix + "-" + h
}

// SlotLabel is a slot's time in unix minutes, as it appears in names and
// labels.
func SlotLabel(slot time.Time) string { return strconv.FormatInt(slot.Unix()/60, 10) }

// RunName names the run of a slot: SCHEDULE-<unix minutes>, with -manual
// for a run started by hand. One slot always gets the same name, so that
// it never makes two runs.
func RunName(schedule string, slot time.Time, manual bool) string {
	n := schedule + "-" + SlotLabel(slot)
	if manual {
		n += "-manual"
	}
	return fit(n)
}

// ExperimentName names the Experiment of a run's step: the run's name for
// a single experiment, RUN-STEP for a gameday step.
func ExperimentName(run, step string) string {
	if step == "" {
		return fit(run)
	}
	return fit(run + "-" + step)
}

// LabelValue fits a name into a label value.
func LabelValue(name string) string { return fit(name) }
