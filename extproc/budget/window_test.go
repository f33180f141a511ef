package budget

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/streamgate/streamgate/config"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

func TestCalendarWindows(t *testing.T) {
	paris := mustLoc(t, "Europe/Paris")
	santiago := mustLoc(t, "America/Santiago")
	kolkata := mustLoc(t, "Asia/Kolkata")
	day := config.BudgetWindow{Calendar: config.BudgetDay}
	month := config.BudgetWindow{Calendar: config.BudgetMonth}
	for name, tc := range map[string]struct {
		w          config.BudgetWindow
		loc        *time.Location
		now        time.Time
		start, end string // RFC 3339 in loc
		stamp      string
		length     time.Duration
	}{
		"utc day":                      {day, time.UTC, time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC), "2026-12-02T00:00:00Z", "2026-12-03T00:00:00Z", "20261202", 24 * time.Hour},
		"paris day, 23:30 local":       {day, paris, time.Date(2026, 12, 2, 22, 30, 0, 0, time.UTC), "2026-12-02T00:00:00+01:00", "2026-12-03T00:00:00+01:00", "20261202", 24 * time.Hour},
		"paris day, 00:30 local":       {day, paris, time.Date(2026, 12, 2, 23, 30, 0, 0, time.UTC), "2026-12-03T00:00:00+01:00", "2026-12-04T00:00:00+01:00", "20261203", 24 * time.Hour},
		"paris spring forward: 23h":    {day, paris, time.Date(2026, 3, 29, 12, 0, 0, 0, time.UTC), "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00", "20260329", 23 * time.Hour},
		"paris fall back: 25h":         {day, paris, time.Date(2026, 10, 25, 12, 0, 0, 0, time.UTC), "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00", "20261025", 25 * time.Hour},
		"kolkata half-hour offset":     {day, kolkata, time.Date(2026, 12, 2, 18, 29, 0, 0, time.UTC), "2026-12-02T00:00:00+05:30", "2026-12-03T00:00:00+05:30", "20261202", 24 * time.Hour},
		"santiago skipped midnight":    {day, santiago, time.Date(2026, 9, 6, 3, 30, 0, 0, time.UTC), "2026-09-05T23:00:00-04:00", "2026-09-07T00:00:00-03:00", "20260906", 24 * time.Hour},
		"santiago day before the skip": {day, santiago, time.Date(2026, 9, 6, 2, 30, 0, 0, time.UTC), "2026-09-05T00:00:00-04:00", "2026-09-05T23:00:00-04:00", "20260905", 23 * time.Hour},
		"month":                        {month, time.UTC, time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z", "202612", 31 * 24 * time.Hour},
		"month, next year in paris":    {month, paris, time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC), "2027-01-01T00:00:00+01:00", "2027-02-01T00:00:00+01:00", "202701", 31 * 24 * time.Hour},
		"leap february":                {month, time.UTC, time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC), "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z", "202802", 29 * 24 * time.Hour},
		"march with the dst change":    {month, paris, time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC), "2026-03-01T00:00:00+01:00", "2026-04-01T00:00:00+02:00", "202603", 31*24*time.Hour - time.Hour},
	} {
		t.Run(name, func(t *testing.T) {
			sp := spanAt(tc.w, tc.now, tc.loc)
			assert.Equal(t, tc.start, sp.start.In(tc.loc).Format(time.RFC3339))
			assert.Equal(t, tc.end, sp.end.In(tc.loc).Format(time.RFC3339))
			assert.Equal(t, tc.stamp, sp.stamp)
			assert.Equal(t, tc.length, sp.end.Sub(sp.start))
			assert.False(t, tc.now.Before(sp.start), "the window contains now")
			assert.True(t, tc.now.Before(sp.end), "the window contains now")
			assert.False(t, sp.rolling())
			assert.Equal(t, sp.end.Sub(tc.now), sp.resetAfter(tc.now, -1))
		})
	}
}

// Windows tile time: every day's end is the next day's start, across a
// year of DST changes in zones that skip midnight.
func TestDaysTileTime(t *testing.T) {
	for _, name := range []string{"UTC", "Europe/Paris", "America/Santiago", "America/Havana", "Asia/Beirut", "Australia/Lord_Howe"} {
		loc := mustLoc(t, name)
		day := config.BudgetWindow{Calendar: config.BudgetDay}
		sp := spanAt(day, time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), loc)
		for range 400 {
			next := spanAt(day, sp.end, loc)
			require.Equal(t, sp.end, next.start, "%s: %s ends where %s starts", name, sp.stamp, next.stamp)
			require.NotEqual(t, sp.stamp, next.stamp, name)
			require.Greater(t, next.end.Sub(next.start), 22*time.Hour, name)
			sp = next
		}
	}
}

func TestRollingWindow(t *testing.T) {
	w := config.BudgetWindow{Rolling: time.Hour}
	now := time.Unix(1_800_000_000, 0)
	sp := spanAt(w, now, time.UTC)
	require.True(t, sp.rolling())
	assert.Equal(t, time.Minute, sp.sliceLen)
	assert.Equal(t, now.UnixNano()/int64(time.Minute), sp.slice)
	assert.Equal(t, time.Hour, sp.end.Sub(sp.start), "60 slices of a minute")
	assert.Equal(t, 61*time.Minute, sp.ttl())
	// Spend in the oldest slice of the window leaves it when that slice
	// is 60 slices old.
	oldest := sp.slice - 59
	assert.Equal(t, time.Unix(0, (oldest+60)*int64(time.Minute)).Sub(now), sp.resetAfter(now, oldest))
	assert.Equal(t, time.Second, sp.resetAfter(sp.end.Add(time.Minute), oldest), "at least a second")
	assert.Equal(t, time.Second, sliceLen(time.Minute), "a minute's slices are seconds")
}

func TestHourStamp(t *testing.T) {
	paris := mustLoc(t, "Europe/Paris")
	assert.Equal(t, "2026120201", hourStamp(time.Date(2026, 12, 2, 2, 59, 0, 0, paris)))
	assert.Equal(t, "2026120223", hourStamp(time.Date(2026, 12, 2, 23, 0, 0, 0, time.UTC)))
}
