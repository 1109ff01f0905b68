package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress shows how far `vivace ingest --wait` has got with a file: on a
// terminal one line redrawn in place, with a bar once the file's total is
// known; otherwise a line every few seconds while something moves. Either
// way the last line is the file's final counts, the same as the JSON line
// that follows on standard output.
type progress struct {
	w     io.Writer
	tty   bool
	now   func() time.Time
	every time.Duration // between plain lines

	start    time.Time
	lastLine time.Time
	last     string // the last plain line's text, not repeated
}

func newProgress(w io.Writer, tty bool, now func() time.Time) *progress {
	t := now()
	// A plain line only once a file takes a while: a small file shows its
	// final counts alone.
	return &progress{w: w, tty: tty, now: now, every: 5 * time.Second, start: t, lastLine: t}
}

const barWidth = 24

// update shows st, a status polled while the file is not final.
func (p *progress) update(st fileStatus) {
	line := p.line(st)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
		return
	}
	t := p.now()
	if line == p.last || t.Sub(p.lastLine) < p.every {
		return
	}
	fmt.Fprintln(p.w, line)
	p.last, p.lastLine = line, t
}

// finish shows the final status and ends the display.
func (p *progress) finish(st fileStatus) {
	line := p.final(st)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K\n", line)
		return
	}
	fmt.Fprintln(p.w, line)
}

// line describes a file on its way.
func (p *progress) line(st fileStatus) string {
	done := st.MURs + st.Exceptions + st.Filtered
	var b strings.Builder
	b.WriteString(st.Name)
	switch {
	case st.Records != nil && *st.Records > 0:
		total := *st.Records
		if p.tty {
			fill := int(min(done, total) * barWidth / total)
			fmt.Fprintf(&b, " [%s%s]", strings.Repeat("#", fill), strings.Repeat(".", barWidth-fill))
		}
		fmt.Fprintf(&b, " %d/%d records (%d%%)", done, total, done*100/total)
	case done > 0:
		fmt.Fprintf(&b, " %s: %d records done, total not known until the file is read", st.Status, done)
	default:
		fmt.Fprintf(&b, " %s, no record done yet", st.Status)
	}
	if el := p.now().Sub(p.start); el >= time.Second && done > 0 {
		rate := float64(done) / el.Seconds()
		prec := 0
		if rate < 10 {
			prec = 1
		}
		fmt.Fprintf(&b, ", %.*f records/s", prec, rate)
	}
	return b.String()
}

// final describes a file that has finished.
func (p *progress) final(st fileStatus) string {
	r := st.result()
	s := fmt.Sprintf("%s %s: %d records: %d MURs, %d exceptions, %d filtered", st.Name, st.Status, r.Records, r.MURs, r.Exceptions, r.Filtered)
	if r.Split > 0 {
		s += fmt.Sprintf(" (%d added by splits)", r.Split)
	}
	if r.Reason != "" {
		s += "; " + r.Reason
	}
	return s
}
