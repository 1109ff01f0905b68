package usage

import (
	"errors"
	"strings"
	"testing"
)

const prose = `It was a bright cold day in April, and the clocks were striking thirteen.
Winston Smith, his chin nuzzled into his breast in an effort to escape the vile wind,
slipped quickly through the glass doors of Victory Mansions.
`

// TestCheckFields: what counts as not usage, and what is only incomplete.
func TestCheckFields(t *testing.T) {
	mapped := map[string]string{"CallRef": "record_id", "Subscriber": "account_id"}
	for _, c := range []struct {
		what, name, content string
		opts                ReaderOptions
		refused             []string // fragments of the reason; none: accepted
	}{
		{what: "prose read as CSV", name: "prose.txt", content: prose, refused: []string{
			"prose.txt: the header names none of the fields a usage record needs (record_id, account_id, usage_type, quantity, usage_time)",
			`its columns are "It was a bright cold day in April", "and the clocks were striking thirteen."`,
			"under columns: in the client's settings"}},
		{what: "all required fields", name: "u.csv", content: "record_id,account_id,usage_type,quantity,usage_time\n"},
		{what: "some required fields: records become MISSING_FIELD", name: "u.csv", content: "record_id,quantity,cell\nr1,1,C1\n"},
		{what: "the client's names, mapped", name: "u.csv", content: "CallRef,Subscriber,x\n", opts: ReaderOptions{Columns: mapped}},
		{what: "the client's names, not mapped", name: "u.csv", content: "CallRef,Subscriber,x\n", refused: []string{
			`its columns are "CallRef", "Subscriber", "x"`}},
		{what: "names a mediation plugin maps", name: "u.csv", content: "call_id,msisdn\n", opts: ReaderOptions{AnyColumns: true}},
		{what: "another delimiter", name: "u.csv", content: "record_id;account_id;usage_type;quantity;usage_time\n", refused: []string{
			`If ";" separates the columns, set delimiter: ";" in the client's settings`}},
		{what: "many columns", name: "u.csv", content: "a,b,c,d,e,f,g,h,i,j\n", refused: []string{`"h" and 2 more`}},
		{what: "JSON Lines with the fields", name: "u.jsonl", content: "{\"event\":1}\n{\"record_id\":\"r1\"}\n"},
		{what: "JSON Lines, mapped", name: "u.jsonl", content: "{\"CallRef\":\"c1\"}\n", opts: ReaderOptions{Columns: mapped}},
		{what: "JSON Lines without any field", name: "u.jsonl", content: "{\"event\":1,\"who\":\"x\"}\n{\"event\":2,\"size\":3}\n", refused: []string{
			"u.jsonl: none of the first 2 records has any of the fields a usage record needs",
			`their fields are "event", "size", "who"`, "under columns:"}},
		{what: "a JSON array on one line", name: "u.json", content: "[{\"record_id\":\"r1\"},{\"record_id\":\"r2\"}]\n", refused: []string{
			"u.json: the file starts with [: it is one JSON array, not JSON Lines"}},
		{what: "lines that are not objects", name: "u.jsonl", content: "\"a\"\n12\n", refused: []string{
			"not JSON Lines: none of the first 2 lines is a JSON object (line 1 holds a JSON string)"}},
		{what: "prose named .jsonl", name: "prose.jsonl", content: prose, refused: []string{
			"not JSON Lines: none of the first 3 lines is a JSON object (line 1: not JSON at byte 1: invalid character 'I' looking for beginning of value)"}},
		{what: "a JSON array over many lines", name: "u.json", content: "[\n  {\"record_id\": \"r1\"}\n]\n", refused: []string{
			"one JSON array"}},
		{what: "an array, whatever the mediation", name: "u.jsonl", content: "[{\"a\":1}]", opts: ReaderOptions{AnyColumns: true}, refused: []string{
			"one JSON array"}},
	} {
		t.Run(c.what, func(t *testing.T) {
			r, err := NewReader(strings.NewReader(c.content), c.name, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			err = r.CheckFields()
			if len(c.refused) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("accepted (%v), want refused", err)
			}
			for _, want := range c.refused {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("reason %q\nlacks %q", err, want)
				}
			}
		})
	}
}
