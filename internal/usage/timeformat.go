package usage

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // zone names resolve wherever Vivace runs, without the system's zone files
)

// The named timestamp formats of a client's usage_time (docs/ingestion.md,
// "Timestamps"); anything else is a Go layout.
const (
	TimeRFC3339      = "rfc3339"
	TimeEpochSeconds = "epoch_seconds"
	TimeEpochMillis  = "epoch_millis"
)

// TimeFormat is how a client writes usage_time. The zero value is RFC 3339
// with an offset, the default.
type TimeFormat struct {
	name   string // TimeRFC3339, TimeEpochSeconds, TimeEpochMillis, or "" for a layout
	layout string
	loc    *time.Location
	zone   string
}

// exampleTime is the moment the messages show in each format.
var exampleTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// NewTimeFormat reads a format setting: rfc3339 (or empty), epoch_seconds,
// epoch_millis, or a Go layout written with the reference time
// 2006-01-02 15:04:05 (such as "2006-01-02 15:04:05" or
// "02/01/2006 15:04"). zone is the IANA zone ("Europe/London") or fixed
// offset ("+02:00") that a layout without an offset is read in (default
// UTC); it is refused for the other formats, which carry their own.
func NewTimeFormat(format, zone string) (TimeFormat, error) {
	switch format {
	case "", TimeRFC3339, TimeEpochSeconds, TimeEpochMillis:
		if zone != "" {
			return TimeFormat{}, fmt.Errorf("zone %q: only a layout without an offset is read in a zone; %s timestamps carry their own", zone, orDefault(format))
		}
		if format == TimeRFC3339 {
			format = ""
		}
		return TimeFormat{name: format}, nil
	}
	loc := time.UTC
	if zone != "" {
		var err error
		if loc, err = parseZone(zone); err != nil {
			return TimeFormat{}, err
		}
	}
	// A layout must read back a whole timestamp, to the minute at least:
	// one without a time of day, or with a month written as a number
	// twice, is not a usage time.
	ref := time.Date(2031, 11, 23, 19, 47, 38, 0, loc)
	got, err := time.ParseInLocation(format, ref.Format(format), loc)
	if err != nil || !(got.Equal(ref) || got.Equal(ref.Truncate(time.Minute))) {
		return TimeFormat{}, fmt.Errorf("format %q is not a timestamp layout: it must give the year, month, day, hour and minute, written with Go's reference time 2006-01-02 15:04:05 (for example \"2006-01-02 15:04:05\" or \"02/01/2006 15:04\"), or be rfc3339, epoch_seconds or epoch_millis", format)
	}
	return TimeFormat{layout: format, loc: loc, zone: zone}, nil
}

func orDefault(format string) string {
	if format == "" {
		return TimeRFC3339
	}
	return format
}

// parseZone reads an IANA zone name or a fixed offset (+02:00, -0500, Z).
func parseZone(zone string) (*time.Location, error) {
	if zone == "Z" || zone == "UTC" {
		return time.UTC, nil
	}
	if zone[0] == '+' || zone[0] == '-' {
		for _, layout := range []string{"-07:00", "-0700", "-07"} {
			if t, err := time.Parse(layout, zone); err == nil {
				_, off := t.Zone()
				return time.FixedZone(zone, off), nil
			}
		}
		return nil, fmt.Errorf("zone %q is not an offset such as +02:00 or -0500", zone)
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("zone %q is not a time zone name such as Europe/London or America/New_York, nor an offset such as +02:00", zone)
	}
	return loc, nil
}

// String names the format for messages: "2006-01-02 15:04:05 in
// Europe/London", "epoch_seconds", "RFC 3339".
func (f TimeFormat) String() string {
	switch {
	case f.layout != "" && f.zone != "":
		return fmt.Sprintf("%q in %s", f.layout, f.zone)
	case f.layout != "":
		return fmt.Sprintf("%q in UTC", f.layout)
	case f.name == "":
		return "RFC 3339"
	}
	return f.name
}

// expected says what a usage_time in this format looks like.
func (f TimeFormat) expected() string {
	switch {
	case f.layout != "":
		return fmt.Sprintf("the client's format %s (e.g. %s)", f, exampleTime.In(f.loc).Format(f.layout))
	case f.name == TimeEpochSeconds:
		return fmt.Sprintf("the client's format epoch_seconds: seconds since 1970-01-01T00:00:00Z (e.g. %d)", exampleTime.Unix())
	case f.name == TimeEpochMillis:
		return fmt.Sprintf("the client's format epoch_millis: milliseconds since 1970-01-01T00:00:00Z (e.g. %d)", exampleTime.UnixMilli())
	}
	return "an RFC 3339 timestamp (e.g. 2026-03-01T12:00:00Z)"
}

// Parse reads s in the format.
func (f TimeFormat) Parse(s string) (time.Time, error) {
	switch {
	case f.layout != "":
		return time.ParseInLocation(f.layout, s, f.loc)
	case f.name == TimeEpochSeconds:
		return parseEpoch(s, 12, 9, time.Second)
	case f.name == TimeEpochMillis:
		return parseEpoch(s, 15, 6, time.Millisecond)
	}
	return time.Parse(time.RFC3339Nano, s)
}

var errEpoch = errors.New("not an epoch number")

// parseEpoch reads digits, with up to fracDigits decimals, as a count of
// unit since 1970: at most intDigits whole digits, so it cannot overflow.
func parseEpoch(s string, intDigits, fracDigits int, unit time.Duration) (time.Time, error) {
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || len(whole) > intDigits || !allDigits(whole) || (dot && (frac == "" || len(frac) > fracDigits || !allDigits(frac))) {
		return time.Time{}, errEpoch
	}
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return time.Time{}, errEpoch
	}
	// The fraction in nanoseconds: fracDigits decimals of unit.
	var fracNanos int64
	if frac != "" {
		f, _ := strconv.ParseInt(frac+strings.Repeat("0", fracDigits-len(frac)), 10, 64)
		fracNanos = f * (int64(unit) / pow10i(fracDigits))
	}
	perSecond := int64(time.Second / unit)
	return time.Unix(n/perSecond, (n%perSecond)*int64(unit)+fracNanos).UTC(), nil
}

func pow10i(n int) int64 {
	p := int64(1)
	for range n {
		p *= 10
	}
	return p
}

// Format writes t as a usage_time in the format, so that Parse reads it
// back (a record that did not come from a file, such as a usage posted
// to the TMF635 API, then goes through the client's checks as a line of
// its file would). Times before 1970 are written in RFC 3339 in the epoch
// formats, which have no sign.
func (f TimeFormat) Format(t time.Time) string {
	switch {
	case f.layout != "":
		return t.In(f.loc).Format(f.layout)
	case (f.name == TimeEpochSeconds || f.name == TimeEpochMillis) && t.Unix() >= 0:
		unit, digits := time.Second, 9
		if f.name == TimeEpochMillis {
			unit, digits = time.Millisecond, 6
		}
		n := t.UnixNano()
		s := strconv.FormatInt(n/int64(unit), 10)
		if rest := n % int64(unit); rest != 0 {
			frac := strconv.FormatInt(rest, 10)
			s += "." + strings.TrimRight(strings.Repeat("0", digits-len(frac))+frac, "0")
		}
		return s
	}
	return t.UTC().Format(time.RFC3339Nano)
}
