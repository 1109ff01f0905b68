package uiapi

import (
	"encoding/json"
	"fmt"
)

// JSON is the schema's JSON scalar: any JSON value, in and out.
type JSON struct{ json.RawMessage }

// ImplementsGraphQLType names the scalar for the schema.
func (JSON) ImplementsGraphQLType(name string) bool { return name == "JSON" }

// UnmarshalGraphQL takes a value given as a variable or a literal.
func (j *JSON) UnmarshalGraphQL(input any) error {
	b, err := json.Marshal(input)
	if err != nil {
		return fmt.Errorf("not a JSON value: %w", err)
	}
	j.RawMessage = b
	return nil
}

// MarshalJSON answers the value as it is.
func (j JSON) MarshalJSON() ([]byte, error) {
	if len(j.RawMessage) == 0 {
		return []byte("null"), nil
	}
	return j.RawMessage, nil
}

func jsonOf(b []byte) JSON { return JSON{json.RawMessage(b)} }

func jsonPtr(b []byte) *JSON {
	if len(b) == 0 {
		return nil
	}
	j := jsonOf(b)
	return &j
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
