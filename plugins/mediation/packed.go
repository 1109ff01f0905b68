package mediation

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unsafe"

	"vivace.dev/vivace/plugins/mediation/mediationv2"
)

// Field is one field of a record.
type Field struct{ Name, Value string }

// Fields are a record's fields in the order they came; a name appears at
// most once. The host works with records in this form so that no map is
// built for a record on its side of the wire.
type Fields []Field

// Get returns the value of field name, or "" when the record has none.
func (f Fields) Get(name string) string {
	for _, x := range f {
		if x.Name == name {
			return x.Value
		}
	}
	return ""
}

// Map returns the fields as a map.
func (f Fields) Map() map[string]string {
	m := make(map[string]string, len(f))
	for _, x := range f {
		m[x.Name] = x.Value
	}
	return m
}

// Reply is the host's view of what became of one input record: a Result
// whose mediated records are Fields.
type Reply struct {
	Records  []Fields
	Error    *RecordError
	Filtered string
}

// Caller is the host's side of a running plugin, whatever protocol version
// it speaks: the plugin dispensed by PluginMap or VersionedPlugins is one.
type Caller interface {
	Describe(ctx context.Context) (Info, error)
	Configure(ctx context.Context, client string, config json.RawMessage) error
	// MediateBatch returns one Reply per record of b, in order, or fewer
	// or more when the plugin broke the contract; the host checks.
	MediateBatch(ctx context.Context, b *Batch) ([]Reply, error)
}

// Batch is a batch of raw records as the host sends it, packed as protocol
// version 2 carries it (mediationv2/mediation.proto): clients, file ids and
// field names once each in a list, the records one after the other in one
// buffer. Add starts a record, Field adds a field to it. A Batch can be
// Reset and filled again; it is not safe for concurrent use.
type Batch struct {
	names []string
	pos   map[string]uint64
	buf   []byte
	lines []int64
	open  bool
	// The name positions of the previous record's fields and of this
	// one's so far: records of a file mostly have the same fields in the
	// same order, and comparing a name with the one in the same place
	// before is cheaper than looking it up.
	prev, cur []uint64
	// The previous record's client and file id.
	client, file uint64
}

// Reset empties b, keeping its memory.
func (b *Batch) Reset() {
	b.names, b.buf, b.lines, b.open = b.names[:0], b.buf[:0], b.lines[:0], false
	b.prev, b.cur = b.prev[:0], b.cur[:0]
	clear(b.pos)
}

// Grow makes room for about n more bytes of records.
func (b *Batch) Grow(n int) { b.buf = slices.Grow(b.buf, n) }

// Len is the number of records in b.
func (b *Batch) Len() int { return len(b.lines) }

// Line is the line of record i.
func (b *Batch) Line(i int) int64 { return b.lines[i] }

// Add starts a record of client, from fileID at line.
func (b *Batch) Add(client, fileID string, line int64) {
	if b.open {
		b.buf = append(b.buf, 0)
	}
	// A batch is mostly one client's and one file's records.
	if len(b.lines) == 0 || b.names[b.client-1] != client {
		b.client = b.position(client)
	}
	if len(b.lines) == 0 || b.names[b.file-1] != fileID {
		b.file = b.position(fileID)
	}
	b.buf = binary.AppendUvarint(b.buf, b.client)
	b.buf = binary.AppendUvarint(b.buf, b.file)
	b.buf = binary.AppendVarint(b.buf, line)
	b.lines = append(b.lines, line)
	b.open = true
	b.prev, b.cur = b.cur, b.prev[:0]
}

// Field adds a field to the record Add started last. A name must not be
// given twice for one record.
func (b *Batch) Field(name, value string) {
	var p uint64
	if k := len(b.cur); k < len(b.prev) && b.names[b.prev[k]-1] == name {
		p = b.prev[k]
	} else {
		p = b.position(name)
	}
	b.cur = append(b.cur, p)
	b.buf = binary.AppendUvarint(b.buf, p)
	b.buf = appendString(b.buf, value)
}

// AddRecord adds r, its fields in map order.
func (b *Batch) AddRecord(r RawRecord) {
	b.Add(r.Client, r.FileID, r.Line)
	for k, v := range r.Fields {
		b.Field(k, v)
	}
}

// packed returns the records as the wire carries them.
func (b *Batch) packed() []byte {
	if b.open {
		b.buf = append(b.buf, 0)
		b.open = false
	}
	return b.buf
}

// position is the position of s in b.names plus one, adding it when new.
func (b *Batch) position(s string) uint64 {
	p, ok := b.pos[s]
	if !ok {
		if b.pos == nil {
			b.pos = make(map[string]uint64, 16)
		}
		b.names = append(b.names, s)
		p = uint64(len(b.names))
		b.pos[s] = p
	}
	return p
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// records unpacks a batch into records for a plugin's Mediate. The values
// are substrings of one copy of the buffer.
func (b *Batch) records() ([]RawRecord, error) {
	return unpackRecords(b.names, len(b.lines), string(b.packed()))
}

// reader reads a packed buffer, remembering the first fault.
type reader struct {
	s     string
	at    int
	names []string
	err   error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: byte %d: %s", ErrMalformed, r.at, fmt.Sprintf(format, args...))
	}
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	// The common case: one byte.
	if r.at < len(r.s) && r.s[r.at] < 0x80 {
		r.at++
		return uint64(r.s[r.at-1])
	}
	var x uint64
	var s uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if r.at >= len(r.s) {
			r.fail("the data ends inside a number")
			return 0
		}
		c := r.s[r.at]
		r.at++
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break
			}
			return x | uint64(c)<<s
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	r.fail("a number overflows 64 bits")
	return 0
}

func (r *reader) varint() int64 {
	u := r.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (r *reader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.s)-r.at) {
		r.fail("a string of %d bytes runs past the end", n)
		return ""
	}
	s := r.s[r.at : r.at+int(n)]
	r.at += int(n)
	return s
}

// name reads a name; ok is false at the zero that ends a record.
func (r *reader) name() (string, bool) {
	p := r.uvarint()
	if r.err != nil || p == 0 {
		return "", false
	}
	if p > uint64(len(r.names)) {
		r.fail("name %d is past the %d names sent", p, len(r.names))
		return "", false
	}
	return r.names[p-1], true
}

func (r *reader) mustName() string {
	s, ok := r.name()
	if !ok && r.err == nil {
		r.fail("a name is missing")
	}
	return s
}

// fields reads fields up to the zero that ends a record into dst, checking
// that no name appears twice.
func (r *reader) fields(dst []Field) []Field {
	start := len(dst)
	for {
		name, ok := r.name()
		if !ok {
			return dst
		}
		for _, f := range dst[start:] {
			if f.Name == name {
				r.fail("field %s appears twice in one record", name)
				return dst
			}
		}
		dst = append(dst, Field{Name: name, Value: r.str()})
	}
}

func (r *reader) end(what string, n int) error {
	if r.err == nil && r.at != len(r.s) {
		r.fail("%d bytes left after %d %s", len(r.s)-r.at, n, what)
	}
	return r.err
}

// unpackRecords reads count records from packed; their strings are
// substrings of it.
func unpackRecords(names []string, count int, packed string) ([]RawRecord, error) {
	r := &reader{s: packed, names: names}
	if uint64(count) > uint64(len(packed)) {
		return nil, fmt.Errorf("%w: %d records in %d bytes", ErrMalformed, count, len(packed))
	}
	recs := make([]RawRecord, count)
	var tmp []Field
	for i := range recs {
		rec := &recs[i]
		rec.Client = r.mustName()
		rec.FileID = r.mustName()
		rec.Line = r.varint()
		tmp = r.fields(tmp[:0])
		if r.err != nil {
			return nil, fmt.Errorf("record %d (line %d): %w", i+1, rec.Line, r.err)
		}
		rec.Fields = make(map[string]string, len(tmp))
		for _, f := range tmp {
			rec.Fields[f.Name] = f.Value
		}
	}
	if err := r.end("records", count); err != nil {
		return nil, err
	}
	return recs, nil
}

// packResults encodes a plugin's answer for protocol version 2. Nothing is
// corrected here, so that a faulty plugin is seen as one.
func packResults(in []Result) *mediationv2.MediateResponse {
	size := 0
	for _, r := range in {
		for _, m := range r.Records {
			for k, v := range m {
				size += len(k)/4 + len(v) + 3 // names mostly repeat
			}
		}
		size += 4
	}
	n := newNames()
	buf := make([]byte, 0, size)
	for _, r := range in {
		switch {
		case r.Error != nil:
			buf = append(buf, byte(mediationv2.Outcome_OUTCOME_ERROR))
			buf = appendString(buf, r.Error.Code)
			buf = appendString(buf, r.Error.Field)
			buf = appendString(buf, r.Error.Message)
		case r.Filtered != "":
			buf = append(buf, byte(mediationv2.Outcome_OUTCOME_FILTERED))
			buf = appendString(buf, r.Filtered)
		case r.Records != nil:
			buf = append(buf, byte(mediationv2.Outcome_OUTCOME_MEDIATED))
			buf = binary.AppendUvarint(buf, uint64(len(r.Records)))
			for _, m := range r.Records {
				for k, v := range m {
					buf = binary.AppendUvarint(buf, uint64(n.position(k))+1)
					buf = appendString(buf, v)
				}
				buf = append(buf, 0)
			}
		default:
			buf = append(buf, byte(mediationv2.Outcome_OUTCOME_UNSPECIFIED))
		}
	}
	return &mediationv2.MediateResponse{Names: n.list, Count: uint32(len(in)), Results: buf}
}

// unpackReplies decodes an answer of protocol version 2 on the host's
// side. A result with no outcome becomes a Reply with nothing set, which
// the host rejects by line; a result that breaks the packing fails the
// whole answer. The values are substrings of one copy of the buffer.
func unpackReplies(resp *mediationv2.MediateResponse) ([]Reply, error) {
	packed, count := resp.GetResults(), int(resp.GetCount())
	if uint64(count) > uint64(len(packed)) {
		return nil, fmt.Errorf("%w: %d results in %d bytes", ErrMalformed, count, len(packed))
	}
	r := &reader{s: owned(packed), names: resp.GetNames()}
	out := make([]Reply, count)
	// Room for every record to have every name once, as most do; never
	// more than the bytes allow.
	fields := make([]Field, 0, min(count*len(r.names), len(packed)/2))
	recs := make([]Fields, 0, count)
	for i := range out {
		switch o := r.uvarint(); mediationv2.Outcome(o) {
		case mediationv2.Outcome_OUTCOME_MEDIATED:
			parts := r.uvarint()
			if parts == 0 || parts > uint64(len(r.s)-r.at) {
				r.fail("result %d: %d records", i+1, parts)
				break
			}
			r0 := len(recs)
			for range parts {
				f0 := len(fields)
				fields = r.fields(fields)
				recs = append(recs, fields[f0:len(fields):len(fields)])
			}
			out[i].Records = recs[r0:len(recs):len(recs)]
		case mediationv2.Outcome_OUTCOME_ERROR:
			out[i].Error = &RecordError{Code: r.str(), Field: r.str(), Message: r.str()}
		case mediationv2.Outcome_OUTCOME_FILTERED:
			out[i].Filtered = r.str()
			if out[i].Filtered == "" {
				// Filtered without a reason is still filtered.
				out[i].Filtered = "filtered by the plugin"
			}
		case mediationv2.Outcome_OUTCOME_UNSPECIFIED:
		default:
			r.fail("result %d: unknown outcome %d", i+1, o)
		}
		if r.err != nil {
			return nil, fmt.Errorf("result %d: %w", i+1, r.err)
		}
	}
	if err := r.end("results", count); err != nil {
		return nil, err
	}
	return out, nil
}

// owned returns b as a string without copying it. b must be a buffer
// nobody writes to any more: a bytes field protobuf decoded into a message
// of its own (it copies the field out of gRPC's buffer), which the caller
// drops once read. The strings read from it keep it alive.
func owned(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// repliesFromResults turns the results of a version-1 plugin into Replies,
// each record's fields in name order.
func repliesFromResults(in []Result) []Reply {
	out := make([]Reply, len(in))
	for i, r := range in {
		out[i] = Reply{Error: r.Error, Filtered: r.Filtered}
		if r.Records == nil {
			continue
		}
		out[i].Records = make([]Fields, len(r.Records))
		for j, m := range r.Records {
			f := make(Fields, 0, len(m))
			for k, v := range m {
				f = append(f, Field{k, v})
			}
			slices.SortFunc(f, func(a, b Field) int { return strings.Compare(a.Name, b.Name) })
			out[i].Records[j] = f
		}
	}
	return out
}
