package jsonx

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

func check(t *testing.T, s string) {
	t.Helper()
	want, _ := json.Marshal(s)
	if got := AppendString([]byte("x"), s); string(got) != "x"+string(want) {
		t.Fatalf("AppendString(%q) = %s, encoding/json writes %s", s, got[1:], want)
	}
}

// TestAppendStringIsEncodingJSONs, byte for byte: escapes, HTML-sensitive
// characters, invalid UTF-8, U+2028 and U+2029.
func TestAppendStringIsEncodingJSONs(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " and \ back`, "a\tb\nc\rd\be\ff", "\x00\x1f\x7f",
		"<a href='x'>&amp;</a>", "é ü 日本", "\xff\xfe bad", "\xe2\x80", "line\u2028para\u2029", "🙂"} {
		check(t, s)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		check(t, string(b))
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("a\"b<c>\u2028\xff")
	f.Fuzz(func(t *testing.T, s string) { check(t, s) })
}

func TestDescribe(t *testing.T) {
	type doc struct {
		Version int64     `json:"version"`
		At      time.Time `json:"at"`
		Tags    []string  `json:"tags"`
	}
	for in, want := range map[string]string{
		`[1]`:                    "a JSON array where a document was expected",
		`{"version":"3"}`:        "version: a JSON string where a whole number was expected",
		`{"tags":"x"}`:           "tags: a JSON string where a list was expected",
		`{"version":`:            "the JSON ends before a document is complete (a line cut short?)",
		`{"version":x}`:          "not JSON at byte 12: invalid character 'x' looking for beginning of value",
		`{"at":"2026-03-01"}`:    `"2026-03-01" is not an RFC 3339 timestamp (e.g. 2026-03-01T00:00:00Z)`,
		`{"version":1} trailing`: "not JSON at byte 15: invalid character 't' after top-level value",
	} {
		var d doc
		err := json.Unmarshal([]byte(in), &d)
		if got := Describe(err, "a document"); got == nil || got.Error() != want {
			t.Errorf("%s: %v, want %s", in, got, want)
		}
	}
	if other := errors.New("other"); Describe(other, "x") != other {
		t.Error("an error it does not know is changed")
	}
}

func BenchmarkAppendString(b *testing.B) {
	values := []string{"SUB0007373", "PLAN003", "per_unit", "0.013", "2020-01-01T00:00:00Z", "3413.85",
		"PCT0007373", "percent", "31.09587", "3.88698375", "01a23579-6e1d-7757-bde9-294a7fc83eff", "acme-1234567"}
	dst := make([]byte, 0, 512)
	for b.Loop() {
		dst = dst[:0]
		for _, v := range values {
			dst = AppendString(dst, v)
		}
	}
}
