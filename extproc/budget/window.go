// Package budget caps what tenants and API keys spend, in the currency of
// the cost table (telemetry.prices), over calendar windows (day, month, in
// a configured time zone) and rolling ones. A request reserves its
// worst-case cost at admission and settles with its real cost when it
// ends, the reservation model of the token rate limits
// (extproc/ratelimit). Counters live in a Store: this process's memory, or
// Redis shared by every gateway replica.
package budget

import (
	"strconv"
	"time"

	"github.com/streamgate/streamgate/config"
)

// rollingSlices is how many slices a rolling window is kept in: spend
// leaves the window one slice (window/60) at a time, so the window is
// exact to within one slice.
const rollingSlices = 60

// calendarGrace keeps a calendar window's counter this long past the
// window's end, so a stream that ends after midnight still settles into
// the window it was admitted in.
const calendarGrace = 24 * time.Hour

// dayWindow is the calendar day, which the daily series also use.
var dayWindow = config.BudgetWindow{Calendar: config.BudgetDay}

// span is one window instance: a calendar window's [start, end), or a
// rolling window's current slice.
type span struct {
	// start and end bound a calendar window; for a rolling one, start is
	// the oldest slice's start and end the current slice's end.
	start, end time.Time
	// stamp names a calendar window in its counter's key ("20261202",
	// "202612"); empty for rolling windows.
	stamp string
	// slice is a rolling window's current slice index (time since the
	// epoch / sliceLen), sliceLen its length; 0 for calendar windows.
	slice    int64
	sliceLen time.Duration
}

// spanAt returns the instance of w that contains now, calendar windows
// in loc. A day is 23 or 25 hours across a DST change; a window starts at
// the zone's midnight or, where the zone skips midnight, where time.Date
// normalizes it (the previous day's 23:00 in America/Santiago), so windows
// always tile time without gaps or overlaps.
func spanAt(w config.BudgetWindow, now time.Time, loc *time.Location) span {
	switch w.Calendar {
	case config.BudgetDay:
		y, m, d := now.In(loc).Date()
		if !now.Before(time.Date(y, m, d+1, 0, 0, 0, 0, loc)) {
			// The next midnight does not exist and normalizes to before
			// now (America/Santiago, 2026-09-06): now is in the next day.
			y, m, d = time.Date(y, m, d+1, 12, 0, 0, 0, loc).Date()
		}
		return span{start: time.Date(y, m, d, 0, 0, 0, 0, loc), end: time.Date(y, m, d+1, 0, 0, 0, 0, loc), stamp: dayStamp(y, m, d)}
	case config.BudgetMonth:
		y, m, _ := now.In(loc).Date()
		if !now.Before(time.Date(y, m+1, 1, 0, 0, 0, 0, loc)) {
			y, m, _ = time.Date(y, m+1, 1, 12, 0, 0, 0, loc).Date()
		}
		return span{start: time.Date(y, m, 1, 0, 0, 0, 0, loc), end: time.Date(y, m+1, 1, 0, 0, 0, 0, loc), stamp: strconv.Itoa(y*100 + int(m))}
	}
	l := sliceLen(w.Rolling)
	idx := now.UnixNano() / int64(l)
	return span{
		start: time.Unix(0, (idx-rollingSlices+1)*int64(l)), end: time.Unix(0, (idx+1)*int64(l)),
		slice: idx, sliceLen: l,
	}
}

// sliceLen is the length of one slice of a rolling window of length d.
func sliceLen(d time.Duration) time.Duration { return max(d/rollingSlices, time.Second) }

// dayStamp names a day in keys: yyyymmdd.
func dayStamp(y int, m time.Month, d int) string { return strconv.Itoa(y*10000 + int(m)*100 + d) }

// hourStamp names a UTC hour in the hourly series' keys: yyyymmddhh.
func hourStamp(t time.Time) string {
	t = t.UTC()
	y, m, d := t.Date()
	return strconv.Itoa(y*10000+int(m)*100+d) + twoDigits(t.Hour())
}

func twoDigits(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}

// expireAt is when a counter of s may go: a calendar window's end plus
// calendarGrace; rolling counters use ttl instead.
func (s span) expireAt() time.Time { return s.end.Add(calendarGrace) }

// ttl is how long a rolling counter lives after its last write: the whole
// window and one slice.
func (s span) ttl() time.Duration { return s.sliceLen * (rollingSlices + 1) }

// rolling reports whether s is a rolling window's.
func (s span) rolling() bool { return s.sliceLen > 0 }

// resetAfter is how long after now a window with its oldest non-empty
// slice at oldest (rolling; -1: none) frees room: a calendar window's
// end, else the oldest spend's leaving the window. At least one second.
func (s span) resetAfter(now time.Time, oldest int64) time.Duration {
	var d time.Duration
	switch {
	case !s.rolling():
		d = s.end.Sub(now)
	case oldest >= 0:
		d = time.Unix(0, (oldest+rollingSlices)*int64(s.sliceLen)).Sub(now)
	default:
		d = s.end.Sub(now)
	}
	return max(d, time.Second)
}
