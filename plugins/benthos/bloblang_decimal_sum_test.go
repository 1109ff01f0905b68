package benthos

import (
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
)

func TestDecimalSum(t *testing.T) {
	for _, tc := range []struct {
		mapping, want, err string
	}{
		{`root = ["60", "60.5", "12"].decimal_sum()`, "132.5", ""},
		{`root = ["0.1", "0.2"].decimal_sum()`, "0.3", ""}, // 0.30000000000000004 in float64
		{`root = ["1", 2, ""].decimal_sum()`, "3", ""},
		{`root = [].decimal_sum()`, "0", ""},
		{`root = ["1", 2.5].decimal_sum()`, "", "item 1: 2.5 is a floating-point number"},
		{`root = ["1", "x"].decimal_sum()`, "", `item 1: "x" is not a decimal`},
		{`root = "12".decimal_sum()`, "", "expected an array"},
	} {
		exe, err := bloblang.Parse(tc.mapping)
		if err != nil {
			t.Fatalf("%s: %v", tc.mapping, err)
		}
		got, err := exe.Query(nil)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s = %v, %v; want an error naming %s", tc.mapping, got, err, tc.err)
			}
		case err != nil || got != tc.want:
			t.Errorf("%s = %v, %v; want %s", tc.mapping, got, err, tc.want)
		}
	}
}
