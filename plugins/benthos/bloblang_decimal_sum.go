package benthos

import (
	"fmt"

	"github.com/redpanda-data/benthos/v4/public/bloblang"

	"vivace.dev/vivace/internal/rules"
)

// decimal_sum adds quantities exactly, where Bloblang's own sum() goes
// through float64: a correlation rule's merge sums its parts' quantities
// with it.
func decimalSumSpec() *bloblang.PluginSpec {
	return bloblang.NewPluginSpec().
		Category("Vivace").
		Description("Adds an array of decimal strings (or integers) exactly and returns the sum as a decimal string. Empty strings count as nothing. Unlike `sum()`, it never goes through floating point, so quantities keep every digit.").
		Example("The duration of a call from its partial records", `root.quantity = this.records.map_each(r -> r.fields.duration).decimal_sum()`,
			[2]string{
				`{"records":[{"fields":{"duration":"60"}},{"fields":{"duration":"60.5"}},{"fields":{"duration":"12"}}]}`,
				`{"quantity":"132.5"}`,
			})
}

func init() {
	err := bloblang.RegisterMethodV2("decimal_sum", decimalSumSpec(),
		func(*bloblang.ParsedParams) (bloblang.Method, error) {
			return decimalSum, nil
		})
	if err != nil {
		panic(err)
	}
}

func decimalSum(v any) (any, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("decimal_sum: expected an array, got %T", v)
	}
	vals := make([]string, len(arr))
	for i, x := range arr {
		s, err := rules.ExactString(x)
		if err != nil {
			return nil, fmt.Errorf("decimal_sum: item %d: %w", i, err)
		}
		vals[i] = s
	}
	return rules.SumDecimals(vals)
}
