package store

import (
	"encoding/binary"
	"errors"

	"github.com/jackc/pgx/v5/pgtype"
)

// numericCodec is PostgreSQL's numeric codec that also writes a Go string
// holding a plain decimal in the binary format. The stores pass amounts
// and quantities as strings; pgx's own codec cannot write a string as
// binary, so for every numeric or numeric[] parameter it built an error
// that prints the whole value, then wrote text (in the rate stage, the
// counters' and allowances' write-back: 4,000 values a batch). A string
// that is not a plain decimal (an exponent, NaN) is left to pgx's text
// path, and PostgreSQL judges it.
type numericCodec struct{ pgtype.NumericCodec }

func (c numericCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(string); ok && format == pgtype.BinaryFormatCode {
		return encodeNumericString{}
	}
	return c.NumericCodec.PlanEncode(m, oid, format, value)
}

type encodeNumericString struct{}

var errNotPlainDecimal = errors.New("not a plain decimal")

// Encode writes a plain decimal (an optional sign, digits, an optional
// point and more digits; at least one digit) in numeric's binary form:
// base-10000 digits around the point, the weight of the first, and the
// scale as written, which is what the server makes of the same text.
func (encodeNumericString) Encode(value any, buf []byte) ([]byte, error) {
	s := value.(string)
	i := 0
	neg := false
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-'
		i++
	}
	intStart := i
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	intPart := s[intStart:i]
	var frac string
	if i < len(s) && s[i] == '.' {
		i++
		fracStart := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		frac = s[fracStart:i]
	}
	if i != len(s) || len(intPart)+len(frac) == 0 || len(frac) > 0x3FFF {
		return nil, errNotPlainDecimal
	}
	for len(intPart) > 0 && intPart[0] == '0' {
		intPart = intPart[1:]
	}
	intGroups, fracGroups := (len(intPart)+3)/4, (len(frac)+3)/4
	if intGroups > 0x7FFF {
		return nil, errNotPlainDecimal
	}
	var room [24]uint16
	digits := room[:0]
	// The integer part is grouped from the point leftwards: the first
	// group holds what is left over.
	lead := len(intPart) - (intGroups-1)*4
	for g, from := 0, 0; g < intGroups; g++ {
		to := lead + g*4
		var d uint16
		for _, c := range []byte(intPart[from:to]) {
			d = d*10 + uint16(c-'0')
		}
		digits = append(digits, d)
		from = to
	}
	for g := 0; g < fracGroups; g++ {
		var d uint16
		for k := 0; k < 4; k++ {
			d *= 10
			if j := g*4 + k; j < len(frac) {
				d += uint16(frac[j] - '0')
			}
		}
		digits = append(digits, d)
	}
	weight := intGroups - 1
	for len(digits) > 0 && digits[0] == 0 {
		digits = digits[1:]
		weight--
	}
	for len(digits) > 0 && digits[len(digits)-1] == 0 {
		digits = digits[:len(digits)-1]
	}
	sign := uint16(0)
	if neg && len(digits) > 0 {
		sign = 0x4000
	}
	if len(digits) == 0 {
		weight = 0
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(digits)))
	buf = binary.BigEndian.AppendUint16(buf, uint16(int16(weight)))
	buf = binary.BigEndian.AppendUint16(buf, sign)
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(frac)))
	for _, d := range digits {
		buf = binary.BigEndian.AppendUint16(buf, d)
	}
	return buf, nil
}
