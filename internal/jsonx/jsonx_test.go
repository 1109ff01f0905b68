package jsonx

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
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
