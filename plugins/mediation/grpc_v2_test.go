package mediation

import (
	"errors"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"vivace.dev/vivace/plugins/mediation/mediationv2"
)

func TestPackedRoundTrip(t *testing.T) {
	recs := []RawRecord{
		{Client: "acme", FileID: "f", Line: 2, Fields: map[string]string{"a": "1", "b": "2"}},
		{Client: "acme", FileID: "g", Line: -3, Fields: map[string]string{"b": "3", "c": ""}},
		{Client: "other", FileID: "f", Line: 1 << 40, Fields: map[string]string{}},
	}
	var b Batch
	for range 2 { // the second time after Reset
		b.Reset()
		for _, r := range recs {
			b.AddRecord(r)
		}
		got, err := b.records()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, recs) {
			t.Errorf("request: got %+v, want %+v", got, recs)
		}
		if b.Len() != 3 || b.Line(2) != 1<<40 {
			t.Errorf("Len %d, Line(2) %d", b.Len(), b.Line(2))
		}
	}

	results := []Result{
		Mediated(map[string]string{"record_id": "r1", "x": "y"}),
		Mediated(map[string]string{"record_id": "r2"}, map[string]string{"record_id": "r2-b", "z": "1"}),
		{Error: &RecordError{Code: "BAD_QUANTITY", Field: "q", Message: "no"}},
		Filter("test"),
		{}, // no outcome: stays empty for the host to reject
		Mediated(map[string]string{}),
	}
	wire, err := proto.Marshal(packResults(results))
	if err != nil {
		t.Fatal(err)
	}
	var resp mediationv2.MediateResponse
	if err := proto.Unmarshal(wire, &resp); err != nil {
		t.Fatal(err)
	}
	back, err := unpackReplies(&resp)
	if err != nil {
		t.Fatal(err)
	}
	if want := repliesFromResults(results); !reflect.DeepEqual(sorted(back), want) {
		t.Errorf("results: got %+v, want %+v", back, want)
	}
}

// sorted puts each record's fields in name order, as repliesFromResults.
func sorted(in []Reply) []Reply {
	for _, r := range in {
		for j, f := range r.Records {
			m := f.Map()
			r.Records[j] = repliesFromResults([]Result{Mediated(m)})[0].Records[0]
		}
	}
	return in
}

func TestPackedMalformed(t *testing.T) {
	m, e, fl := byte(mediationv2.Outcome_OUTCOME_MEDIATED), byte(mediationv2.Outcome_OUTCOME_ERROR), byte(mediationv2.Outcome_OUTCOME_FILTERED)
	for name, resp := range map[string]*mediationv2.MediateResponse{
		"name past the list":      {Names: []string{"a"}, Count: 1, Results: []byte{m, 1, 2, 1, 'v', 0}},
		"string past the end":     {Names: []string{"a"}, Count: 1, Results: []byte{m, 1, 1, 5, 'v', 0}},
		"record not ended":        {Names: []string{"a"}, Count: 1, Results: []byte{m, 1, 1, 1, 'v'}},
		"no records":              {Names: []string{"a"}, Count: 1, Results: []byte{m, 0}},
		"name twice":              {Names: []string{"a"}, Count: 1, Results: []byte{m, 1, 1, 1, 'v', 1, 1, 'w', 0}},
		"bytes left over":         {Count: 1, Results: []byte{fl, 1, 'x', 7}},
		"fewer results":           {Count: 2, Results: []byte{fl, 1, 'x'}},
		"unknown outcome":         {Count: 1, Results: []byte{9}},
		"error cut short":         {Count: 1, Results: []byte{e, 1, 'C', 0}},
		"more results than bytes": {Count: 1000, Results: []byte{fl, 0}},
		"number overflows":        {Count: 1, Results: []byte{m, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
	} {
		if _, err := unpackReplies(resp); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	if _, err := unpackRecords([]string{"acme"}, 1, string([]byte{1, 1, 4, 2, 1, 'v', 0})); !errors.Is(err, ErrMalformed) {
		t.Errorf("request: err = %v, want ErrMalformed", err)
	}
}

// FuzzUnpackReplies feeds arbitrary answers to the host's decoder: it
// must return replies or an error, never panic.
func FuzzUnpackReplies(f *testing.F) {
	resp := packResults([]Result{Mediated(map[string]string{"a": "b"}), Filter("x"), Fail("f", "m")})
	f.Add(resp.Results, uint32(3), 1)
	f.Fuzz(func(t *testing.T, b []byte, count uint32, names int) {
		_, _ = unpackReplies(&mediationv2.MediateResponse{Names: make([]string, names&15), Count: count, Results: b})
		_, _ = unpackRecords(make([]string, names&15), int(count&0xffff), string(b))
	})
}
