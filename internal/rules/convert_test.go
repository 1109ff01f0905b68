package rules

import (
	"strings"
	"testing"
)

func TestConvert(t *testing.T) {
	tests := []struct {
		from, to, round string
		scale           int
		in, want        string
	}{
		{"s", "min", RoundUp, 0, "61", "2"},     // a started minute counts whole
		{"s", "min", RoundUp, 0, "60", "1"},     // exactly one
		{"s", "min", RoundUp, 0, "0", "0"},      // nothing stays nothing
		{"s", "min", RoundDown, 0, "119", "1"},  // whole minutes only
		{"s", "min", RoundNone, 0, "90", "1.5"}, // exact
		{"B", "GB", RoundHalfUp, 3, "1500000", "0.002"},
		{"B", "GB", RoundHalfUp, 3, "1499999", "0.001"},
		{"B", "GiB", RoundUp, 2, "1073741825", "1.01"},
		{"MiB", "KiB", RoundNone, 0, "1.5", "1536"},
		{"ms", "s", RoundHalfUp, 1, "1250", "1.3"},
		{"B", "GB", RoundNone, 0, "123456789012345678901234567890", "123456789012345678901.23456789"},
	}
	for _, tt := range tests {
		c, err := NewConverter(tt.from, tt.to, tt.round, tt.scale)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Convert(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("%s %s -> %s (%s, %d): got %q %v, want %q", tt.in, tt.from, tt.to, tt.round, tt.scale, got, err, tt.want)
		}
	}
}

func TestConvertRefuses(t *testing.T) {
	for _, tt := range []struct{ from, to, round, want string }{
		{"s", "GB", RoundNone, "a time unit cannot become a bytes unit"},
		{"parsecs", "s", RoundNone, `unknown unit "parsecs"`},
		{"s", "min", "banker", `round: "banker"`},
	} {
		if _, err := NewConverter(tt.from, tt.to, tt.round, 0); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err %v, want %q", tt, err, tt.want)
		}
	}
	c, _ := NewConverter("s", "min", RoundUp, 0)
	for _, in := range []string{"-1", "ten", "NaN"} {
		if _, err := c.Convert(in); err == nil {
			t.Errorf("%q converted", in)
		}
	}
}

func TestConvertRoundsSmallValuesUp(t *testing.T) {
	c, _ := NewConverter("s", "min", RoundUp, 0)
	for in, want := range map[string]string{"2": "1", "0.001": "1", "59.999": "1", "60.0001": "2"} {
		if got, err := c.Convert(in); err != nil || got != want {
			t.Errorf("%s s: got %q %v, want %q min", in, got, err, want)
		}
	}
	h, _ := NewConverter("B", "kB", RoundHalfUp, 0)
	for in, want := range map[string]string{"499": "0", "500": "1", "1499": "1", "1500": "2"} {
		if got, err := h.Convert(in); err != nil || got != want {
			t.Errorf("%s B: got %q %v, want %q kB", in, got, err, want)
		}
	}
}
