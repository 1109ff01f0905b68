package codes

import (
	"fmt"
	"slices"
	"testing"
)

// TestOrderIsDESIGNs: the codes and their checking order are part of the
// external contract (DESIGN.md, "Rating rules").
func TestOrderIsDESIGNs(t *testing.T) {
	design := []Code{"MALFORMED_RECORD", "MEDIATION_FAILED", "PLUGIN_ERROR", "MISSING_FIELD", "BAD_QUANTITY",
		"BAD_TIMESTAMP", "DUPLICATE_RECORD", "UNKNOWN_ACCOUNT", "ACCOUNT_CLOSED", "UNKNOWN_USAGE_TYPE",
		"NO_SUBSCRIPTION", "NO_RATE"}
	if !slices.Equal(Ordered, design) {
		t.Fatalf("Ordered = %v\nDESIGN  = %v", Ordered, design)
	}
	for i, c := range design {
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
