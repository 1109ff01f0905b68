package money

import (
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/apd/v3"
)

func TestExponent(t *testing.T) {
	for code, want := range map[string]int32{"USD": 2, "EUR": 2, "JPY": 0, "BHD": 3, "KWD": 3, "CLF": 4, "UYW": 4} {
		if got, ok := Exponent(code); !ok || got != want {
			t.Errorf("Exponent(%s) = %d, %v; want %d", code, got, ok, want)
		}
	}
	for _, code := range []string{"", "usd", "US", "USDD", "XAU", "XXX", "ZZZ", "U$D"} {
		if _, ok := Exponent(code); ok || Known(code) {
			t.Errorf("Exponent(%q) known; want unknown", code)
		}
	}
	all := Currencies()
	if len(all) != len(exponents) || all[0] != "AED" || !strings.HasPrefix(strings.Join(all, ","), "AED,AFN,ALL") {
		t.Errorf("Currencies() = %d codes starting %v", len(all), all[:3])
	}
}

func TestParseKeepsTheWrittenValue(t *testing.T) {
	for in, want := range map[string]string{
		"0": "0", "2.50": "2.50", "-0.25": "-0.25", ".5": "0.5", "5.": "5", "+7": "7", "-0": "0", "-0.000": "0.000",
		"2E3": "2E+3", "1.5e-2": "0.015", "00012.5": "12.5", "123456789012345678901234567890": "123456789012345678901234567890",
		"0.000000000000000000000000000001": "1E-30",
		// Trailing zeros beyond the fraction limit are dropped, not refused.
		"1." + strings.Repeat("0", 35): "1.000000000000000000000000000000",
	} {
		d, err := Parse(in)
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if got := d.String(); got != want {
			t.Errorf("Parse(%q) = %s, want %s", in, got, want)
		}
		if d.Negative && d.IsZero() {
			t.Errorf("Parse(%q) is a negative zero", in)
		}
	}
}

func TestParseSaysWhy(t *testing.T) {
	for in, reason := range map[string]string{
		"":                             "empty",
		"abc":                          "not a decimal number",
		"NaN":                          "NaN is not a number",
		"-Infinity":                    "infinity is not allowed",
		"1,5":                          "unexpected ','",
		" 1":                           "not a decimal number",
		"1 ":                           "unexpected ' '",
		"1e":                           "exponent has no digits",
		"1e99999999999":                "exponent out of range",
		strings.Repeat("1", 41):        "more than 40 significant digits",
		"0." + strings.Repeat("1", 31): "more than 30 digits after the decimal point",
		"1e61":                         "more than 60 digits before the decimal point",
		strings.Repeat("0", 201):       "longer than 200 characters",
	} {
		_, err := Parse(in)
		var pe *ParseError
		if !errors.As(err, &pe) || !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %v; want a ParseError", in, err)
			continue
		}
		if pe.Reason != reason {
			t.Errorf("Parse(%q): reason %q, want %q", in, pe.Reason, reason)
		}
		if len(pe.Input) > 50 {
			t.Errorf("Parse(%q): the error quotes %d bytes of input", in[:10], len(pe.Input))
		}
	}
}

func TestParseJSON(t *testing.T) {
	for in, want := range map[string]string{`1.5`: "1.5", `"2.50"`: "2.50", ` -3 `: "-3", `"1e2"`: "1E+2"} {
		d, err := ParseJSON([]byte(in))
		if err != nil || d.String() != want {
			t.Errorf("ParseJSON(%s) = %s, %v; want %s", in, d.String(), err, want)
		}
	}
	for _, in := range []string{``, `null`, `"1.5`, `"1\u0035"`, `true`, `[1]`, `{"v":1}`, `""`, `"NaN"`} {
		if _, err := ParseJSON([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseJSON(%s) = %v; want ErrInvalid", in, err)
		}
	}
}

func TestRoundHalfUpToTheMinorUnit(t *testing.T) {
	for _, c := range []struct{ in, cur, want string }{
		{"2.675", "USD", "2.68"}, {"2.674999", "USD", "2.67"}, {"-2.675", "USD", "-2.68"}, {"5", "USD", "5.00"},
		{"0.5", "JPY", "1"}, {"0.4999", "JPY", "0"}, {"1.0005", "BHD", "1.001"}, {"-0.004", "USD", "0.00"},
		{"0.00005", "CLF", "0.0001"}, {"1E+3", "EUR", "1000.00"}, {"0.625", "USD", "0.63"},
		{"1E-30", "USD", "0.00"}, {"5E-3", "USD", "0.01"}, {"123456789012345678901234567890.125", "USD", "123456789012345678901234567890.13"},
	} {
		d, err := Parse(c.in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Round(&d, c.cur)
		if err != nil || got.String() != c.want {
			t.Errorf("Round(%s %s) = %s, %v; want %s", c.in, c.cur, got.String(), err, c.want)
		}
		if got.Negative && got.IsZero() {
			t.Errorf("Round(%s %s) is a negative zero", c.in, c.cur)
		}
	}
	// Amounts built by arithmetic can go beyond what Parse accepts.
	for _, c := range []struct {
		d    *apd.Decimal
		want string
	}{{apd.New(1, -45), "0.00"}, {apd.New(5, -3), "0.01"}, {apd.New(-123, 40), "-1230000000000000000000000000000000000000000.00"}} {
		if got, err := Round(c.d, "USD"); err != nil || got.String() != c.want {
			t.Errorf("Round(%s USD) = %s, %v; want %s", c.d, got.String(), err, c.want)
		}
	}
	d := apd.New(1, 0)
	if _, err := Round(d, "XAU"); !errors.Is(err, ErrUnknownCurrency) {
		t.Errorf("Round in XAU: %v", err)
	}
	if err := RoundTo(d, d, -1); err == nil {
		t.Error("RoundTo -1 places: no error")
	}
	if err := RoundTo(d, &apd.Decimal{Form: apd.NaN}, 2); err == nil {
		t.Error("RoundTo NaN: no error")
	}
}

// TestRoundToMatchesExactArithmetic compares RoundTo, on both its fast and
// its slow path and with dst aliasing x, with half-up rounding done on
// big.Rat.
func TestRoundToMatchesExactArithmetic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		digits := 1 + rng.IntN(38)
		var sb strings.Builder
		if rng.IntN(2) == 0 {
			sb.WriteByte('-')
		}
		for j := 0; j < digits; j++ {
			sb.WriteByte(byte('0' + rng.IntN(10)))
		}
		exp := rng.IntN(50) - 35
		in := fmt.Sprintf("%se%d", sb.String(), exp)
		x, err := Parse(in)
		if err != nil {
			continue // beyond Parse's limits
		}
		places := int32(rng.IntN(5))
		var got apd.Decimal
		if err := RoundTo(&got, &x, places); err != nil {
			t.Fatalf("RoundTo(%s, %d): %v", in, places, err)
		}
		alias := x
		if err := RoundTo(&alias, &alias, places); err != nil || alias.Cmp(&got) != 0 {
			t.Fatalf("RoundTo(%s, %d) in place = %s, %v; want %s", in, places, alias.String(), err, got.String())
		}
		want := refRound(t, x.String(), places)
		if got.Exponent != -places || got.Text('f') != want {
			t.Fatalf("RoundTo(%s, %d) = %s (exponent %d), want %s", in, places, got.Text('f'), got.Exponent, want)
		}
	}
}

// refRound rounds the decimal text s half away from zero to places.
func refRound(t *testing.T, s string, places int32) string {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("big.Rat cannot read %s", s)
	}
	neg := r.Sign() < 0
	r.Abs(r)
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(places)), nil)
	r.Mul(r, new(big.Rat).SetInt(scale))
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if new(big.Int).Mul(m, big.NewInt(2)).Cmp(r.Denom()) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	out := new(big.Rat).SetFrac(q, scale).FloatString(int(places))
	if neg && q.Sign() != 0 {
		out = "-" + out
	}
	return out
}
