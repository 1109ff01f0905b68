package codes

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"testing"
)

// TestOrderIsDocumented: the codes and their checking order are what users
// rely on; docs/exceptions.md lists them, and this keeps the two equal.
func TestOrderIsDocumented(t *testing.T) {
	page, err := os.ReadFile("../../docs/exceptions.md")
	if err != nil {
		t.Fatal(err)
	}
	// The rows of the checking-order table: | 1 | `MALFORMED_RECORD` | …
	var documented []Code
	for _, m := range regexp.MustCompile("(?m)^\\| (\\d+) \\| `([A-Z_]+)` \\|").FindAllSubmatch(page, -1) {
		if want := fmt.Sprint(len(documented) + 1); string(m[1]) != want {
			t.Fatalf("docs/exceptions.md: row %s of the checking order, want %s", m[1], want)
		}
		documented = append(documented, Code(m[2]))
	}
	if !slices.Equal(Ordered, documented) {
		t.Fatalf("Ordered    = %v\ndocumented = %v (docs/exceptions.md)", Ordered, documented)
	}
	for i, c := range documented {
		if !Known(c) || Rank(c) != i {
			t.Errorf("%s: known %v, rank %d; want rank %d", c, Known(c), Rank(c), i)
		}
	}
	for _, c := range []Code{Filtered, "", "bad_quantity", "TIMEOUT"} {
		if Known(c) || Rank(c) != len(Ordered) {
			t.Errorf("%q: known %v, rank %d; not an exception code, it sorts last", c, Known(c), Rank(c))
		}
	}
}

func TestError(t *testing.T) {
	e := Errorf(BadQuantity, "quantity", "quantity %q is not a decimal number", "abc")
	if e.Error() != `BAD_QUANTITY: quantity: quantity "abc" is not a decimal number` {
		t.Errorf("with a field: %s", e)
	}
	if s := Errorf(NoRate, "", "no rate for %s", "VOICE").Error(); s != "NO_RATE: no rate for VOICE" {
		t.Errorf("without a field: %s", s)
	}
	wrapped := fmt.Errorf("rate record r1: %w", e)
	if got, ok := As(wrapped); !ok || got != e {
		t.Errorf("As through a wrap: %v %v", got, ok)
	}
	if _, ok := As(fmt.Errorf("plain")); ok {
		t.Error("As found a code in a plain error")
	}
}
