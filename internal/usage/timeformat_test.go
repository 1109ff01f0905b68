package usage

import (
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/codes"
)

func TestTimeFormats(t *testing.T) {
	now := time.Date(2026, 7, 10, 0, 0, 0, 0, time.UTC)
	rules := func(format, zone string) Rules {
		t.Helper()
		f, err := NewTimeFormat(format, zone)
		if err != nil {
			t.Fatalf("%q %q: %v", format, zone, err)
		}
		r := DefaultRules()
		r.Time = f
		return r
	}
	for _, c := range []struct {
		format, zone, in string
		want             string // RFC 3339 in UTC, or the message's start for BAD_TIMESTAMP
	}{
		{"", "", "2026-07-01T10:00:00+02:00", "2026-07-01T08:00:00Z"},
		{"rfc3339", "", "2026-07-01T10:00:00.5Z", "2026-07-01T10:00:00.5Z"},
		{"", "", "2026-07-01 10:00:00", `usage_time "2026-07-01 10:00:00" is not an RFC 3339 timestamp (e.g. 2026-03-01T12:00:00Z)`},
		{"2006-01-02 15:04:05", "", "2026-07-01 10:00:00", "2026-07-01T10:00:00Z"},
		{"2006-01-02 15:04:05", "Europe/London", "2026-07-01 10:00:00", "2026-07-01T09:00:00Z"}, // summer time
		{"2006-01-02 15:04:05", "Europe/London", "2026-05-01 10:00:00.250", "2026-05-01T09:00:00.25Z"},
		{"2006-01-02 15:04:05", "+02:00", "2026-07-01 10:00:00", "2026-07-01T08:00:00Z"},
		{"2006-01-02 15:04:05", "-0500", "2026-07-01 10:00:00", "2026-07-01T15:00:00Z"},
		{"02/01/2006 15:04", "", "01/07/2026 10:30", "2026-07-01T10:30:00Z"},
		{"2006-01-02T15:04:05Z07:00", "Europe/Paris", "2026-07-01T10:00:00+01:00", "2026-07-01T09:00:00Z"}, // the offset written wins
		{"2006-01-02 15:04:05", "Europe/London", "2026-07-01T10:00:00Z",
			`usage_time "2026-07-01T10:00:00Z" is not the client's format "2006-01-02 15:04:05" in Europe/London (e.g. 2026-03-01 12:00:00)`},
		{"epoch_seconds", "", "1782900000", "2026-07-01T10:00:00Z"},
		{"epoch_seconds", "", "1782900000.125", "2026-07-01T10:00:00.125Z"},
		{"epoch_seconds", "", "1782900000000",
			`usage_time "1782900000000" is not the client's format epoch_seconds: seconds since 1970-01-01T00:00:00Z (e.g. 1772366400)`},
		{"epoch_seconds", "", "-1782900000", `usage_time "-1782900000" is not the client's format epoch_seconds`},
		{"epoch_millis", "", "1782900000123", "2026-07-01T10:00:00.123Z"},
		{"epoch_millis", "", "1782900000123.5", "2026-07-01T10:00:00.1235Z"},
		{"epoch_millis", "", "1.78e12", `usage_time "1.78e12" is not the client's format epoch_millis: milliseconds since 1970-01-01T00:00:00Z (e.g. 1772366400000)`},
		{"epoch_seconds", "", "1000", "usage_time 1000 is older than the 90 days window"}, // the window still applies
	} {
		got, err := ParseUsageTime(c.in, rules(c.format, c.zone), now)
		if err != nil {
			ce, ok := codes.As(err)
			if !ok || ce.Code != codes.BadTimestamp || ce.Field != FieldUsageTime || !strings.HasPrefix(ce.Message, c.want) {
				t.Errorf("%s %s %q: %v, want %s", c.format, c.zone, c.in, err, c.want)
			}
			continue
		}
		if g := got.Format(time.RFC3339Nano); g != c.want {
			t.Errorf("%s %s %q: %s, want %s", c.format, c.zone, c.in, g, c.want)
		}
	}
}

func TestTimeFormatSettings(t *testing.T) {
	for _, c := range []struct{ format, zone, want string }{
		{"2006-01-02", "", `format "2006-01-02" is not a timestamp layout: it must give the year, month, day, hour and minute`},
		{"15:04:05", "", "is not a timestamp layout"},
		{"YYYY-MM-DD hh:mm:ss", "", "is not a timestamp layout"},
		{"epoch_seconds", "UTC", `zone "UTC": only a layout without an offset is read in a zone; epoch_seconds timestamps carry their own`},
		{"", "Europe/London", "rfc3339 timestamps carry their own"},
		{"2006-01-02 15:04:05", "Mars/Olympus", `zone "Mars/Olympus" is not a time zone name such as Europe/London`},
		{"2006-01-02 15:04:05", "+25:00", `zone "+25:00" is not an offset such as +02:00`},
	} {
		_, err := NewTimeFormat(c.format, c.zone)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q %q: %v, want %s", c.format, c.zone, err, c.want)
		}
	}
	for _, ok := range [][2]string{{"2006-01-02 15:04", ""}, {"2006-01-02 15:04:05.000", "America/New_York"}, {"epoch_millis", ""}, {"rfc3339", ""}} {
		if _, err := NewTimeFormat(ok[0], ok[1]); err != nil {
			t.Errorf("%q %q: %v", ok[0], ok[1], err)
		}
	}
}

func FuzzEpochSeconds(f *testing.F) {
	f.Add("1782900000.125")
	f.Add("999999999999.999999999")
	f.Fuzz(func(t *testing.T, s string) {
		for _, name := range []string{TimeEpochSeconds, TimeEpochMillis} {
			tf, _ := NewTimeFormat(name, "")
			got, err := tf.Parse(s)
			if err != nil {
				continue
			}
			if got.Year() < 1970 || got.Year() > 40000 {
				t.Fatalf("%s %q: %v", name, s, got)
			}
		}
	})
}

// TestTimeFormatRoundTrip: what Format writes, Parse reads back as the
// same instant (to the layout's precision).
func TestTimeFormatRoundTrip(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 34, 56, 789000000, time.UTC)
	for _, c := range []struct {
		format, zone string
		want         string
		precision    time.Duration
	}{
		{"", "", "2026-03-01T12:34:56.789Z", 0},
		{"epoch_seconds", "", "1772368496.789", 0},
		{"epoch_millis", "", "1772368496789", 0},
		{"2006-01-02 15:04:05", "Europe/London", "2026-03-01 12:34:56", time.Second},
		{"02/01/2006 15:04", "+02:00", "01/03/2026 14:34", time.Minute},
	} {
		f, err := NewTimeFormat(c.format, c.zone)
		if err != nil {
			t.Fatal(err)
		}
		s := f.Format(at)
		back, err := f.Parse(s)
		if s != c.want || err != nil || !back.Equal(at.Truncate(max(c.precision, time.Nanosecond))) {
			t.Errorf("%s: %q → %v %v, want %q", c.format, s, back, err, c.want)
		}
	}
	f, _ := NewTimeFormat("epoch_millis", "")
	if s := f.Format(at.Add(123456 * time.Nanosecond)); s != "1772368496789.123456" {
		t.Errorf("epoch_millis with a fraction: %q", s)
	}
}
