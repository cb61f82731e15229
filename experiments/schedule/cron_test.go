package schedule

import (
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	v1alpha1 "faultline.dev/faultline/experiments/api/v1alpha1"
)

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func dur(d time.Duration) *time.Duration { return &d }

// TestSlots drives the cron math with a fake clock: where counting starts
// (creation, the last handled slot, the starting deadline), how many slots
// are due and which one starts.
func TestSlots(t *testing.T) {
	tests := map[string]struct {
		cron, zone      string
		created, last   string // RFC 3339; last may be empty
		deadline        *time.Duration
		now             string
		wantSlot        string // empty: none due
		wantMissed      int
		wantTooMany     bool
		wantNext        string
		wantTooLateSlot bool
	}{
		"nothing is due before the first slot after creation": {
			cron: "*/5 * * * *", created: "2026-05-01T10:01:00Z", now: "2026-05-01T10:04:59Z", wantNext: "2026-05-01T10:05:00Z",
		},
		"the slot at creation itself is not due (slots come strictly after)": {
			cron: "*/5 * * * *", created: "2026-05-01T10:00:00Z", now: "2026-05-01T10:00:30Z", wantNext: "2026-05-01T10:05:00Z",
		},
		"one slot passed: it is due, none missed": {
			cron: "*/5 * * * *", created: "2026-05-01T10:01:00Z", now: "2026-05-01T10:05:01Z",
			wantSlot: "2026-05-01T10:05:00Z", wantMissed: 1, wantNext: "2026-05-01T10:10:00Z",
		},
		"after the last slot handled only later slots count": {
			cron: "*/5 * * * *", created: "2026-05-01T09:00:00Z", last: "2026-05-01T10:05:00Z", now: "2026-05-01T10:09:00Z",
			wantNext: "2026-05-01T10:10:00Z",
		},
		"a controller down for 20 minutes finds 4 slots and starts only the most recent": {
			cron: "*/5 * * * *", created: "2026-05-01T09:00:00Z", last: "2026-05-01T10:00:00Z", now: "2026-05-01T10:22:00Z",
			wantSlot: "2026-05-01T10:20:00Z", wantMissed: 4, wantNext: "2026-05-01T10:25:00Z",
		},
		"a starting deadline counts only the slots within it": {
			cron: "*/5 * * * *", created: "2026-05-01T09:00:00Z", last: "2026-05-01T10:00:00Z", deadline: dur(8 * time.Minute), now: "2026-05-01T10:22:00Z",
			wantSlot: "2026-05-01T10:20:00Z", wantMissed: 2, wantNext: "2026-05-01T10:25:00Z",
		},
		"a starting deadline shorter than the lateness leaves nothing due": {
			cron: "0 * * * *", created: "2026-05-01T09:00:00Z", last: "2026-05-01T10:00:00Z", deadline: dur(time.Minute), now: "2026-05-01T11:05:00Z",
			wantNext: "2026-05-01T12:00:00Z",
		},
		"101 missed slots are too many: a warning, and still one run": {
			cron: "* * * * *", created: "2026-05-01T00:00:00Z", now: "2026-05-01T01:41:30Z",
			wantSlot: "2026-05-01T01:41:00Z", wantMissed: 101, wantTooMany: true, wantNext: "2026-05-01T01:42:00Z",
		},
		"100 missed slots are not too many": {
			cron: "* * * * *", created: "2026-05-01T00:00:00Z", now: "2026-05-01T01:40:30Z",
			wantSlot: "2026-05-01T01:40:00Z", wantMissed: 100, wantNext: "2026-05-01T01:41:00Z",
		},
		"a year of missed minutes is bounded and still finds the most recent slot": {
			cron: "* * * * *", created: "2025-05-01T00:00:00Z", now: "2026-05-01T01:40:30Z",
			wantSlot: "2026-05-01T01:40:00Z", wantMissed: countCap, wantTooMany: true, wantNext: "2026-05-01T01:41:00Z",
		},
		"an irregular schedule missed for years finds its most recent slot by bisection": {
			cron: "*/2 2 * * 1-5", zone: "Europe/Paris", created: "2020-01-01T00:00:00Z", now: "2026-05-03T12:00:00Z", // a Sunday
			wantSlot: "2026-05-01T00:58:00Z", wantMissed: countCap, wantTooMany: true, wantNext: "2026-05-04T00:00:00Z",
		},
		"02:30 in New York is skipped on the day clocks go forward": {
			cron: "30 2 * * *", zone: "America/New_York", created: "2026-03-07T12:00:00Z", last: "2026-03-07T07:30:00Z", now: "2026-03-08T12:00:00Z",
			wantNext: "2026-03-09T06:30:00Z", // 02:30 EDT
		},
		"02:30 in New York runs once, in EST, on the day clocks go back": {
			cron: "30 2 * * *", zone: "America/New_York", created: "2026-10-31T12:00:00Z", now: "2026-11-01T12:00:00Z",
			wantSlot: "2026-11-01T07:30:00Z", wantMissed: 1, wantNext: "2026-11-02T07:30:00Z",
		},
		"01:30 in New York happens twice on the day clocks go back, as a CronJob's": {
			cron: "30 1 * * *", zone: "America/New_York", created: "2026-10-31T12:00:00Z", now: "2026-11-01T12:00:00Z",
			wantSlot: "2026-11-01T06:30:00Z", wantMissed: 2, wantNext: "2026-11-02T06:30:00Z",
		},
		"the zone moves the slot: 09:00 in Tokyo is midnight UTC": {
			cron: "0 9 * * *", zone: "Asia/Tokyo", created: "2026-05-01T12:00:00Z", now: "2026-05-02T00:00:01Z",
			wantSlot: "2026-05-02T00:00:00Z", wantMissed: 1, wantNext: "2026-05-03T00:00:00Z",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sched, ferr := v1alpha1.ParseCron(tc.cron, tc.zone)
			if ferr != nil {
				t.Fatal(ferr)
			}
			clk := clocktesting.NewFakeClock(at(t, tc.created))
			clk.SetTime(at(t, tc.now))
			var last *time.Time
			if tc.last != "" {
				l := at(t, tc.last)
				last = &l
			}
			due := Slots(sched, Earliest(at(t, tc.created), last, tc.deadline, clk.Now()), clk.Now())
			if tc.wantSlot == "" {
				if due.Slot != nil {
					t.Errorf("slot %s due, want none", due.Slot.UTC())
				}
			} else if due.Slot == nil || !due.Slot.Equal(at(t, tc.wantSlot)) {
				t.Errorf("slot %v, want %s", due.Slot, tc.wantSlot)
			}
			if due.Missed != tc.wantMissed || due.TooMany != tc.wantTooMany {
				t.Errorf("missed %d (too many %v), want %d (%v)", due.Missed, due.TooMany, tc.wantMissed, tc.wantTooMany)
			}
			if !due.Next.Equal(at(t, tc.wantNext)) {
				t.Errorf("next %s, want %s", due.Next.UTC(), tc.wantNext)
			}
		})
	}
}

func TestTooLate(t *testing.T) {
	slot := at(t, "2026-05-01T10:00:00Z")
	tests := map[string]struct {
		deadline *time.Duration
		now      time.Time
		want     bool
	}{
		"no deadline is never too late":             {now: slot.Add(24 * time.Hour)},
		"within the deadline is not too late":       {deadline: dur(time.Minute), now: slot.Add(59 * time.Second)},
		"exactly at the deadline is not too late":   {deadline: dur(time.Minute), now: slot.Add(time.Minute)},
		"past the deadline is too late":             {deadline: dur(time.Minute), now: slot.Add(61 * time.Second), want: true},
		"a zero deadline allows only the slot time": {deadline: dur(0), now: slot.Add(time.Second), want: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := TooLate(slot, tc.deadline, tc.now); got != tc.want {
				t.Errorf("TooLate = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNamesDeriveFromTheSlot(t *testing.T) {
	slot := at(t, "2026-05-01T10:05:00Z")
	long := strings.Repeat("a", 60)
	tests := map[string]struct {
		got, want string
	}{
		"a run is SCHEDULE-<unix minutes>":               {RunName("nightly", slot, false), "nightly-29627165"},
		"the same slot a second later has the same name": {RunName("nightly", slot.Add(time.Second), false), "nightly-29627165"},
		"a manual run is marked":                         {RunName("nightly", slot, true), "nightly-29627165-manual"},
		"a gameday step is RUN-STEP":                     {ExperimentName(RunName("nightly", slot, false), "cut-node"), "nightly-29627165-cut-node"},
		"a single experiment is named for its run":       {ExperimentName("nightly-29627165", ""), "nightly-29627165"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
	t.Run("long names are cut to 63 characters and stay unique", func(t *testing.T) {
		a := ExperimentName(RunName(long, slot, false), "step-one")
		b := ExperimentName(RunName(long, slot, false), "step-two")
		c := ExperimentName(RunName(long, slot.Add(time.Minute), false), "step-one")
		for _, n := range []string{a, b, c} {
			if len(n) > 63 {
				t.Errorf("%q is %d characters", n, len(n))
			}
		}
		if a == b || a == c || b == c {
			t.Errorf("names collide: %q %q %q", a, b, c)
		}
		if again := ExperimentName(RunName(long, slot, false), "step-one"); again != a {
			t.Errorf("the same slot and step gave %q then %q", a, again)
		}
	})
}
