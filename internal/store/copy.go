package store

import (
	"bytes"
	"context"
	"sync"

	"github.com/jackc/pgx/v5"
)

// Rows written with COPY in its text format by hand cost a fraction of
// encoding each value through the driver's type system; the subject
// packages build them with these helpers and send them with CopyFrom.

var copyBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// NewCopyBuffer returns an empty buffer for COPY rows, from a pool;
// ReleaseCopyBuffer gives it back.
func NewCopyBuffer() *bytes.Buffer {
	b := copyBufs.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

// ReleaseCopyBuffer gives a buffer from NewCopyBuffer back to the pool.
func ReleaseCopyBuffer(b *bytes.Buffer) { copyBufs.Put(b) }

// CopyFrom sends rows in COPY's text format to stmt (a COPY … FROM STDIN)
// on tx's connection and returns how many rows were written.
func CopyFrom(ctx context.Context, tx pgx.Tx, rows *bytes.Buffer, stmt string) (int64, error) {
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, rows, stmt)
	return tag.RowsAffected(), err
}

// CopyText writes s as a COPY text-format value: backslash, tab, newline
// and carriage return escaped. Empty stays empty (not NULL).
func CopyText(buf *bytes.Buffer, s string) {
	for {
		i := copyEscapeIndex(s)
		buf.WriteString(s[:i])
		if i == len(s) {
			return
		}
		buf.WriteByte('\\')
		buf.WriteByte(copyEscape(s[i]))
		s = s[i+1:]
	}
}

// CopyTexts writes values with CopyText, tab-separated.
func CopyTexts(buf *bytes.Buffer, values ...string) {
	for i, v := range values {
		if i > 0 {
			buf.WriteByte('\t')
		}
		CopyText(buf, v)
	}
}

// CopyBytes is CopyText for a byte slice.
func CopyBytes(buf *bytes.Buffer, b []byte) {
	for {
		i := copyEscapeIndex(b)
		buf.Write(b[:i])
		if i == len(b) {
			return
		}
		buf.WriteByte('\\')
		buf.WriteByte(copyEscape(b[i]))
		b = b[i+1:]
	}
}

// CopyNull writes SQL NULL.
func CopyNull(buf *bytes.Buffer) { buf.WriteString(`\N`) }

// CopyTextArray writes values as a text[] value: an array literal, each
// element quoted, in COPY's text format.
func CopyTextArray(buf *bytes.Buffer, values []string) {
	var arr bytes.Buffer
	arr.WriteByte('{')
	for j, v := range values {
		if j > 0 {
			arr.WriteByte(',')
		}
		arr.WriteByte('"')
		for _, c := range []byte(v) {
			if c == '"' || c == '\\' {
				arr.WriteByte('\\')
			}
			arr.WriteByte(c)
		}
		arr.WriteByte('"')
	}
	arr.WriteByte('}')
	CopyBytes(buf, arr.Bytes())
}

func copyEscape(c byte) byte {
	switch c {
	case '\\':
		return '\\'
	case '\t':
		return 't'
	case '\n':
		return 'n'
	case '\r':
		return 'r'
	}
	return 0
}

// Bytes repeated in each byte of a word, for copyEscapeIndex.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// copyEscapeIndex returns the index of the first byte of s that COPY's
// text format escapes, or len(s). Eight bytes are looked at a time: a word
// holding no byte below 14 (tab, newline and carriage return are 9, 10 and
// 13) and no backslash is skipped whole; a word that may hold one is looked
// at byte by byte. The values written are mostly long JSON documents with
// nothing to escape, and this is several times faster than one byte at a
// time there.
func copyEscapeIndex[T string | []byte](s T) int {
	i := 0
	for i+8 <= len(s) {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		bs := x ^ (ones * '\\')
		// A byte below 14 (x − 14 borrows), or a zero byte of bs.
		if ((x-ones*14)&^x|(bs-ones)&^bs)&highs == 0 {
			i += 8
			continue
		}
		for end := i + 8; i < end; i++ {
			if copyEscape(s[i]) != 0 {
				return i
			}
		}
	}
	for ; i < len(s); i++ {
		if copyEscape(s[i]) != 0 {
			return i
		}
	}
	return len(s)
}
