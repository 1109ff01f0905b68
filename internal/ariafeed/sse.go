// Package ariafeed reads the core billing system's native Data Feed — an
// Aria-style stream of server-sent events over HTTPS, authorised with
// OAuth2 client credentials — and turns its entities into Vivace's core
// feed events.
//
// Each feed message is an SSE event whose type is load, create, update or
// delete and whose data is two lines: a header naming the entity
// ({"ref":{"type","ids"},"tstamp","tick"}) and the entity's JSON. Delivery
// is at least once and not necessarily in order; the header's tick is
// used as the event's version, so Vivace's version rule (newer wins, the
// rest is ignored) absorbs repeats and reordering.
package ariafeed

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// SSE is one server-sent event as the W3C EventSource rules assemble it.
type SSE struct {
	ID    string // the last id field seen, on this event or an earlier one
	Type  string // the event field; "message" when absent
	Data  string // the data lines joined with "\n"
	Retry time.Duration
}

// SSEReader reads server-sent events from a stream. Comment lines
// (keep-alives) are skipped; an event ends at a blank line.
type SSEReader struct {
	r      *bufio.Reader
	line   int
	lastID string // the last id seen: it stays with later events
}

// NewSSEReader reads events from r.
func NewSSEReader(r io.Reader) *SSEReader {
	return &SSEReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// maxEventBytes bounds one event, so a stream that never sends a blank
// line cannot take unbounded memory.
const maxEventBytes = 16 << 20

// Next returns the next event with data, io.EOF at the end of the stream,
// or an error naming the stream line.
func (s *SSEReader) Next() (SSE, error) {
	var ev SSE
	var data strings.Builder
	hasData := false
	size := 0
	for {
		line, err := s.r.ReadString('\n')
		if err != nil && (err != io.EOF || line == "") {
			if err == io.EOF && hasData {
				// A stream cut inside an event: the event is incomplete and
				// is dropped, as EventSource does.
				return SSE{}, io.ErrUnexpectedEOF
			}
			return SSE{}, err
		}
		s.line++
		size += len(line)
		if size > maxEventBytes {
			return SSE{}, fmt.Errorf("stream line %d: event larger than %d bytes", s.line, maxEventBytes)
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			ev.ID = s.lastID
			if !hasData {
				if ev.Retry != 0 {
					return SSE{ID: ev.ID, Retry: ev.Retry}, nil // takes effect without data
				}
				ev, size = SSE{}, 0
				continue
			}
			ev.Data = strings.TrimSuffix(data.String(), "\n")
			if ev.Type == "" {
				ev.Type = "message"
			}
			return ev, nil
		}
		if line[0] == ':' {
			continue // comment: keep-alive
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
			hasData = true
		case "event":
			ev.Type = value
		case "id":
			if !strings.ContainsRune(value, 0) {
				s.lastID = value
			}
		case "retry":
			if ms, err := strconv.Atoi(value); err == nil && ms >= 0 {
				ev.Retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}

// splitData separates a feed event's header line from its entity JSON.
func splitData(data string) (header, entity []byte, err error) {
	h, e, ok := strings.Cut(data, "\n")
	if !ok || strings.TrimSpace(e) == "" {
		return nil, nil, fmt.Errorf("expected two data lines (header, entity), got one")
	}
	return bytes.TrimSpace([]byte(h)), bytes.TrimSpace([]byte(e)), nil
}
