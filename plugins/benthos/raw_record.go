package benthos

import (
	"encoding/json"
	"fmt"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/usage"
)

// rawRecord reads a message's body as a raw usage record of a registered
// file (usage.ReadRaw, the reader every stage uses, and ValidFileID) and
// returns its source; a message that is not one fails with
// MALFORMED_RECORD saying why.
func rawRecord(b []byte) (usage.Source, error) {
	r, err := usage.ReadRaw(b)
	if err == nil {
		err = usage.ValidFileID(r.FileID)
	}
	if err != nil {
		return r.Source, codes.Errorf(codes.MalformedRecord, "", "message is not a raw usage record: %v", err)
	}
	return r.Source, nil
}

// intOf reads a JSON integer as Benthos parsed it; a missing one is 0.
func intOf(v any) (int64, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case json.Number:
		return x.Int64()
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case float64:
		if x == float64(int64(x)) {
			return int64(x), nil
		}
	}
	return 0, fmt.Errorf("%v is not an integer", v)
}
