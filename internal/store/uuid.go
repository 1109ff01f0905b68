package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// uuidCodec is PostgreSQL's uuid codec that also writes a Go string in
// the binary format. The stores pass ids as strings; pgx's own codec
// cannot write a string as binary, so for every uuid or uuid[] parameter
// it built an error that prints the whole value and then wrote text: for
// a batch's 2,000 file ids, 1.2 MB and 8,000 allocations per statement
// (BenchmarkUUIDArrayParameter), more than the rest of the statement.
// A string that is not in the canonical form (8-4-4-4-12 hex digits) is
// left to pgx's text path, and PostgreSQL judges it.
type uuidCodec struct{ pgtype.UUIDCodec }

func (c uuidCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(string); ok && format == pgtype.BinaryFormatCode {
		return encodeUUIDString{}
	}
	return c.UUIDCodec.PlanEncode(m, oid, format, value)
}

type encodeUUIDString struct{}

var errNotCanonicalUUID = errors.New("not a uuid in canonical form")

func (encodeUUIDString) Encode(value any, buf []byte) ([]byte, error) {
	s := value.(string)
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return nil, errNotCanonicalUUID
	}
	var hi byte
	half := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			v = c - 'A' + 10
		default:
			return nil, errNotCanonicalUUID
		}
		if half {
			buf = append(buf, hi<<4|v)
		} else {
			hi = v
		}
		half = !half
	}
	return buf, nil
}

// registerTypes is the pool's AfterConnect: uuid through uuidCodec,
// numeric through numericCodec, and text[], uuid[] and numeric[] through
// stringArrayCodec.
func registerTypes(_ context.Context, conn *pgx.Conn) error {
	m := conn.TypeMap()
	u := &pgtype.Type{Name: "uuid", OID: pgtype.UUIDOID, Codec: uuidCodec{}}
	n := &pgtype.Type{Name: "numeric", OID: pgtype.NumericOID, Codec: numericCodec{}}
	text, ok := m.TypeForOID(pgtype.TextOID)
	if !ok {
		return errors.New("the driver has no text type")
	}
	m.RegisterType(u)
	m.RegisterType(n)
	for _, a := range []struct {
		name string
		oid  uint32
		elem *pgtype.Type
		enc  func(string, []byte) ([]byte, error)
	}{
		{"_uuid", pgtype.UUIDArrayOID, u, appendUUID},
		{"_numeric", pgtype.NumericArrayOID, n, appendNumeric},
		{"_text", pgtype.TextArrayOID, text, appendText},
	} {
		m.RegisterType(&pgtype.Type{Name: a.name, OID: a.oid,
			Codec: stringArrayCodec{ArrayCodec: &pgtype.ArrayCodec{ElementType: a.elem}, elemOID: a.elem.OID, elem: a.enc}})
	}
	return nil
}
