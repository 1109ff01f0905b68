package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func ptr(n int64) *int64 { return &n }

// files is a file's statuses as the API reports them while it is
// processed: received, read without a total, then with one, then done.
func fileSteps() []fileStatus {
	return []fileStatus{
		{Name: "usage.csv", Status: "received"},
		{Name: "usage.csv", Status: "processing", MURs: 3},
		{Name: "usage.csv", Status: "processing", Records: ptr(19), MURs: 5, Exceptions: 4},
		{Name: "usage.csv", Status: "done", Records: ptr(19), MURs: 7, Exceptions: 12},
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestProgressLastLineIsTheFinalCounts(t *testing.T) {
	for _, tty := range []bool{false, true} {
		for _, step := range []time.Duration{time.Millisecond, 6 * time.Second} { // a small file, a large one
			var out bytes.Buffer
			clock := &fakeClock{t: time.Unix(0, 0)}
			p := newProgress(&out, tty, clock.now)
			steps := fileSteps()
			for _, st := range steps[:len(steps)-1] {
				clock.t = clock.t.Add(step)
				p.update(st)
			}
			clock.t = clock.t.Add(step)
			p.finish(steps[len(steps)-1])

			text := out.String()
			if strings.Contains(text, "?") {
				t.Errorf("tty %v, step %v: an unknown total shown as ?:\n%q", tty, step, text)
			}
			lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
			last := lines[len(lines)-1]
			if tty {
				parts := strings.Split(last, "\r")
				last = strings.TrimSuffix(parts[len(parts)-1], "\x1b[K")
			}
			if want := "usage.csv done: 19 records: 7 MURs, 12 exceptions, 0 filtered"; last != want {
				t.Errorf("tty %v, step %v: last line %q, want %q\nall: %q", tty, step, last, want, text)
			}
			switch {
			case tty && !strings.Contains(text, "["+strings.Repeat("#", 11)+strings.Repeat(".", 13)+"] 9/19 records (47%)"):
				t.Errorf("terminal: no bar with the total:\n%q", text)
			case !tty && step < time.Second && len(lines) != 1:
				t.Errorf("a small file printed more than its final counts:\n%q", text)
			case !tty && step > time.Second && !strings.Contains(text, "usage.csv 9/19 records (47%), 0.5 records/s\n"):
				t.Errorf("a large file showed no progress lines:\n%q", text)
			}
		}
	}
}

func TestProgressFinalLineSaysWhy(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Unix(0, 0)}
	newProgress(&out, false, clock.now).finish(fileStatus{Name: "x.csv", Status: "failed", Records: ptr(3), MURs: 1,
		Exceptions: 1, Filtered: 1, Split: 1, Reason: "cancelled by an operator"})
	if got, want := out.String(), "x.csv failed: 3 records: 1 MURs, 1 exceptions, 1 filtered (1 added by splits); cancelled by an operator\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
