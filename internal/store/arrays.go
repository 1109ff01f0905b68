package store

import (
	"encoding/binary"

	"github.com/jackc/pgx/v5/pgtype"
)

// stringArrayCodec is PostgreSQL's array codec for text[], uuid[] and
// numeric[] that also writes a Go []string (or []*string, nil for NULL)
// in the binary format in one pass. The stores pass a batch's keys and
// values as string slices, a dozen arrays of thousands of elements in
// each rating transaction; pgx's generic path boxes every element and
// plans it on its own. An element the fast path cannot write (a uuid not
// in canonical form, a decimal with an exponent) leaves the whole
// parameter to pgx's text path, and PostgreSQL judges it.
type stringArrayCodec struct {
	*pgtype.ArrayCodec
	elemOID uint32
	// elem appends an element's binary form.
	elem func(s string, buf []byte) ([]byte, error)
}

func (c stringArrayCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if format == pgtype.BinaryFormatCode {
		switch value.(type) {
		case []string, []*string:
			return stringArrayPlan{c}
		}
	}
	return c.ArrayCodec.PlanEncode(m, oid, format, value)
}

type stringArrayPlan struct{ c stringArrayCodec }

func (p stringArrayPlan) Encode(value any, buf []byte) ([]byte, error) {
	var n int
	var at func(i int) (string, bool)
	switch v := value.(type) {
	case []string:
		if v == nil {
			return nil, nil
		}
		n, at = len(v), func(i int) (string, bool) { return v[i], true }
	case []*string:
		if v == nil {
			return nil, nil
		}
		n, at = len(v), func(i int) (string, bool) {
			if v[i] == nil {
				return "", false
			}
			return *v[i], true
		}
	}
	if n == 0 {
		// No dimensions: the empty array.
		buf = binary.BigEndian.AppendUint32(buf, 0)
		buf = binary.BigEndian.AppendUint32(buf, 0)
		return binary.BigEndian.AppendUint32(buf, p.c.elemOID), nil
	}
	hasNull := uint32(0)
	for i := range n {
		if _, ok := at(i); !ok {
			hasNull = 1
			break
		}
	}
	buf = binary.BigEndian.AppendUint32(buf, 1) // one dimension
	buf = binary.BigEndian.AppendUint32(buf, hasNull)
	buf = binary.BigEndian.AppendUint32(buf, p.c.elemOID)
	buf = binary.BigEndian.AppendUint32(buf, uint32(n))
	buf = binary.BigEndian.AppendUint32(buf, 1) // lower bound
	for i := range n {
		s, ok := at(i)
		if !ok {
			buf = binary.BigEndian.AppendUint32(buf, 0xFFFFFFFF) // -1: NULL
			continue
		}
		lenAt := len(buf)
		buf = append(buf, 0, 0, 0, 0)
		var err error
		if buf, err = p.c.elem(s, buf); err != nil {
			return nil, err
		}
		binary.BigEndian.PutUint32(buf[lenAt:], uint32(len(buf)-lenAt-4))
	}
	return buf, nil
}

func appendText(s string, buf []byte) ([]byte, error) { return append(buf, s...), nil }

func appendUUID(s string, buf []byte) ([]byte, error) { return encodeUUIDString{}.Encode(s, buf) }

func appendNumeric(s string, buf []byte) ([]byte, error) { return encodeNumericString{}.Encode(s, buf) }
