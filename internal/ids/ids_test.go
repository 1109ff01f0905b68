package ids

import (
	"regexp"
	"testing"
	"time"
)

func TestNewIsVersion7AndOrdered(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	prev := New()
	seen := map[string]bool{prev: true}
	for i := 0; i < 10000; i++ {
		if i == 5000 {
			time.Sleep(2 * time.Millisecond)
		}
		id := New()
		if !re.MatchString(id) {
			t.Fatalf("%q is not a version 7 UUID", id)
		}
		if seen[id] {
			t.Fatalf("%s repeated", id)
		}
		seen[id] = true
		// The first 12 hex digits are the millisecond: never go back.
		if id[:8]+id[9:13] < prev[:8]+prev[9:13] {
			t.Fatalf("%s sorts before the earlier %s", id, prev)
		}
		prev = id
	}
	ms := time.Now().UnixMilli()
	var got int64
	for _, c := range prev[:8] + prev[9:13] {
		got = got*16 + int64(hexVal(c))
	}
	if d := ms - got; d < 0 || d > 1000 {
		t.Fatalf("timestamp %d is %d ms from now", got, d)
	}
}

func hexVal(c rune) int {
	if c >= 'a' {
		return int(c-'a') + 10
	}
	return int(c - '0')
}

func TestValid(t *testing.T) {
	for s, want := range map[string]bool{
		New():                                   true,
		"0193A2B4-C5D6-7E8F-9012-3456789ABCDE":  true,
		"not-a-uuid":                            false,
		"0193a2b4c5d67e8f90123456789abcde":      false,
		"0193a2b4-c5d6-7e8f-9012-3456789abcdg":  false,
		"0193a2b4-c5d6-7e8f-9012-3456789abcde ": false,
		"":                                      false,
		"'; DROP TABLE files; --":               false,
	} {
		if Valid(s) != want {
			t.Errorf("Valid(%q) = %v", s, !want)
		}
	}
}

func TestAt(t *testing.T) {
	t0 := time.Now()
	lo := At(t0.Add(-time.Millisecond))
	id := New()
	hi := At(time.Now().Add(2 * time.Millisecond))
	if !(lo < id && id < hi) || !Valid(lo) {
		t.Fatalf("At: %s < %s < %s does not hold", lo, id, hi)
	}
	if At(time.Unix(0, 0)) != "00000000-0000-7000-8000-000000000000" {
		t.Fatalf("At(epoch) = %s", At(time.Unix(0, 0)))
	}
}
