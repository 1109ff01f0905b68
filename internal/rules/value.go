package rules

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// ExactString is a value a rule's query gave (a Bloblang value, or one
// decoded from JSON with numbers kept as json.Number) as a field's
// string: strings, integers and booleans only; null is "". A float would
// lose digits of a quantity, so it is refused.
func ExactString(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case json.Number:
		return x.String(), nil
	case float64:
		return "", fmt.Errorf("%v is a floating-point number; keep quantities as strings and add them with decimal_sum()", x)
	default:
		return "", fmt.Errorf("a %T, not a string", v)
	}
}
