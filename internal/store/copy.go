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
	start := 0
	for i := 0; i < len(s); i++ {
		if esc := copyEscape(s[i]); esc != 0 {
			buf.WriteString(s[start:i])
			buf.WriteByte('\\')
			buf.WriteByte(esc)
			start = i + 1
		}
	}
	buf.WriteString(s[start:])
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
	start := 0
	for i := 0; i < len(b); i++ {
		if esc := copyEscape(b[i]); esc != 0 {
			buf.Write(b[start:i])
			buf.WriteByte('\\')
			buf.WriteByte(esc)
			start = i + 1
		}
	}
	buf.Write(b[start:])
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
