package store

import (
	"bytes"
	"strings"
	"testing"
)

// copyTextByteByByte is the plain reading of COPY's text format that
// CopyText and CopyBytes must agree with.
func copyTextByteByByte(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if esc := copyEscape(s[i]); esc != 0 {
			b.WriteByte('\\')
			b.WriteByte(esc)
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func checkCopyText(t *testing.T, s string) {
	t.Helper()
	want := copyTextByteByByte(s)
	var buf bytes.Buffer
	CopyText(&buf, s)
	if got := buf.String(); got != want {
		t.Fatalf("CopyText(%q) = %q, want %q", s, got, want)
	}
	buf.Reset()
	CopyBytes(&buf, []byte(s))
	if got := buf.String(); got != want {
		t.Fatalf("CopyBytes(%q) = %q, want %q", s, got, want)
	}
}

func TestCopyTextEscapes(t *testing.T) {
	cases := []string{"", "plain", `a\b`, "tab\there", "line\nbreak", "cr\rhere", `\`, "\t\n\r\\",
		"\x00\x01\x08\x0b\x0c\x0d\x0e\x1f", "ünïcödé ✓", `{"detail":"no escapes at all in this one, long enough"}`,
		strings.Repeat("x", 7) + "\t", strings.Repeat("x", 8) + "\n", strings.Repeat("y", 15) + `\` + strings.Repeat("z", 9),
		strings.Repeat("\x0e\x5b\x5d", 11), strings.Repeat("\\", 17)}
	for _, c := range cases {
		checkCopyText(t, c)
	}
	// Every byte value at every position of a word.
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 17; pos++ {
			b := []byte(strings.Repeat("a", 17))
			b[pos] = byte(c)
			checkCopyText(t, string(b))
		}
	}
}

func FuzzCopyText(f *testing.F) {
	f.Add("plain text")
	f.Add("a\tb\nc\rd\\e")
	f.Add(strings.Repeat("0123456789abcdef", 5) + "\\")
	f.Fuzz(func(t *testing.T, s string) { checkCopyText(t, s) })
}

func BenchmarkCopyBytes(b *testing.B) {
	detail := []byte(`{"subscription_id":"SUB0007373","plan_id":"PLAN003","schedule":{"usage_type":"SMS","currency":"USD",` +
		`"model":"per_unit","unit_price":"0.013","effective_from":"2020-01-01T00:00:00Z"},"month":"2026-12",` +
		`"cumulative_before":"3413.85","cumulative_after":"5805.84","discounts":[{"id":"PCT0007373","kind":"percent",` +
		`"value":"12.5","priority":2,"amount":"3.88698375"}],"gross_exact":"31.09587","discount_exact":"3.88698375"}`)
	var buf bytes.Buffer
	b.SetBytes(int64(len(detail)))
	for b.Loop() {
		buf.Reset()
		CopyBytes(&buf, detail)
	}
}
