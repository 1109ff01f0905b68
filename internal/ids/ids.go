// Package ids makes the identifiers Vivace gives what it stores: files,
// MURs, exceptions.
package ids

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// New returns a new version 7 UUID (RFC 9562) in its text form: 48 bits
// of Unix milliseconds, then 74 random bits. IDs made later sort later,
// so the primary-key indexes of the tables that take many rows a second
// (MURs, exceptions) grow at one edge instead of at random pages.
func New() string {
	var b [16]byte
	_, _ = rand.Read(b[6:])
	ms := uint64(time.Now().UnixMilli())
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	return text(b)
}

// Valid reports whether s is a UUID in its text form (8-4-4-4-12
// hexadecimal digits), as every id Vivace gives is: an id that is not one
// names nothing, and is answered as not found rather than sent to the
// database.
func Valid(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// At returns the smallest version 7 id of the millisecond t: every id New
// made at t or later sorts at or after it, every id made earlier before
// it. A time range over rows keyed by such ids is then a range of the key.
func At(t time.Time) string {
	ms := uint64(max(t.UnixMilli(), 0))
	var b [16]byte
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	b[6], b[8] = 0x70, 0x80
	return text(b)
}

// text writes a UUID's 16 bytes in its 8-4-4-4-12 form.
func text(b [16]byte) string {
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
