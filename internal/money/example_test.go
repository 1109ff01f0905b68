package money_test

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/apd/v3"

	"vivace.dev/vivace/internal/money"
)

// Amounts are parsed into exact decimals, multiplied exactly, and rounded
// once, half-up, to the currency's minor unit.
func Example() {
	price, _ := money.Parse("0.3333")
	qty, _ := money.Parse("3")
	var gross apd.Decimal
	if _, err := apd.BaseContext.WithPrecision(34).Mul(&gross, &price, &qty); err != nil {
		panic(err)
	}
	rounded, _ := money.Round(&gross, "USD")
	fmt.Println(gross.String(), "USD is", rounded.String())
	// Output: 0.9999 USD is 1.00
}

func ExampleRound() {
	for _, c := range []struct{ amount, currency string }{
		{"2.675", "USD"}, {"0.5", "JPY"}, {"1.0005", "BHD"}, {"5", "EUR"},
	} {
		d, _ := money.Parse(c.amount)
		r, _ := money.Round(&d, c.currency)
		fmt.Println(c.amount, c.currency, "→", r.String())
	}
	d, _ := money.Parse("1")
	_, err := money.Round(&d, "XYZ")
	fmt.Println(errors.Is(err, money.ErrUnknownCurrency))
	// Output:
	// 2.675 USD → 2.68
	// 0.5 JPY → 1
	// 1.0005 BHD → 1.001
	// 5 EUR → 5.00
	// true
}

func ExampleParse() {
	for _, s := range []string{"2.50", "1E3", "-0", "NaN", "1,5"} {
		d, err := money.Parse(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(d.Text('f'))
	}
	// Output:
	// 2.50
	// 1000
	// 0
	// invalid decimal "NaN": NaN is not a number
	// invalid decimal "1,5": unexpected ','
}

func ExampleExponent() {
	for _, c := range []string{"USD", "JPY", "BHD"} {
		exp, ok := money.Exponent(c)
		fmt.Println(c, exp, ok)
	}
	// Output:
	// USD 2 true
	// JPY 0 true
	// BHD 3 true
}
