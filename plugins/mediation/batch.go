package mediation

import (
	"encoding/binary"
	"slices"
)

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
