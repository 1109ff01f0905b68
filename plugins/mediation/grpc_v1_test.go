package mediation

import (
	"errors"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"vivace.dev/vivace/plugins/mediation/mediationv1"
)

func TestWireRoundTrip(t *testing.T) {
	recs := []RawRecord{
		{Client: "acme", FileID: "f", Line: 2, Fields: map[string]string{"a": "1", "b": "2"}},
		{Client: "acme", FileID: "f", Line: 3, Fields: map[string]string{"b": "3", "c": ""}},
		{Client: "acme", FileID: "f", Line: 4, Fields: map[string]string{}},
	}
	got, err := requestFromWire(requestToWire(recs))
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if len(recs[i].Fields) == 0 && len(got[i].Fields) == 0 {
			got[i].Fields = recs[i].Fields
		}
	}
	if !reflect.DeepEqual(got, recs) {
		t.Errorf("request: got %+v, want %+v", got, recs)
	}

	results := []Result{
		Mediated(map[string]string{"record_id": "r1", "x": "y"}),
		Mediated(map[string]string{"record_id": "r2"}, map[string]string{"record_id": "r2-b", "z": "1"}),
		{Error: &RecordError{Code: "BAD_QUANTITY", Field: "q", Message: "no"}},
		Filter("test"),
		{}, // no outcome: stays empty for the host to reject
	}
	back, err := resultsFromWire(resultsToWire(results))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, results) {
		t.Errorf("results: got %+v, want %+v", back, results)
	}
}

func TestWireMalformed(t *testing.T) {
	mediated := mediationv1.Outcome_OUTCOME_MEDIATED
	for name, resp := range map[string]*mediationv1.MediateResponse{
		"name past the list": {Names: []string{"a"}, Results: []*mediationv1.RecordResult{
			{Outcome: mediated, FieldCounts: []uint32{1}, Names: []uint32{1}, Values: []string{"v"}}}},
		"fewer values than names": {Names: []string{"a", "b"}, Results: []*mediationv1.RecordResult{
			{Outcome: mediated, FieldCounts: []uint32{2}, Names: []uint32{0, 1}, Values: []string{"v"}}}},
		"counts past the fields": {Names: []string{"a"}, Results: []*mediationv1.RecordResult{
			{Outcome: mediated, FieldCounts: []uint32{1, 1}, Names: []uint32{0}, Values: []string{"v"}}}},
		"fields left over": {Names: []string{"a", "b"}, Results: []*mediationv1.RecordResult{
			{Outcome: mediated, FieldCounts: []uint32{1}, Names: []uint32{0, 1}, Values: []string{"v", "w"}}}},
		"name twice": {Names: []string{"a"}, Results: []*mediationv1.RecordResult{
			{Outcome: mediated, FieldCounts: []uint32{2}, Names: []uint32{0, 0}, Values: []string{"v", "w"}}}},
	} {
		if _, err := resultsFromWire(resp); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	req := &mediationv1.MediateRequest{Names: []string{"a"}, Records: []*mediationv1.RawRecord{{Line: 7, Names: []uint32{3}, Values: []string{"v"}}}}
	if _, err := requestFromWire(req); !errors.Is(err, ErrMalformed) {
		t.Errorf("request: err = %v, want ErrMalformed", err)
	}
}

// FuzzResultsFromWire feeds arbitrary answers to the host's decoder: it
// must return results or an error, never panic.
func FuzzResultsFromWire(f *testing.F) {
	seed, _ := proto.Marshal(resultsToWire([]Result{Mediated(map[string]string{"a": "b"}), Filter("x")}))
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		var resp mediationv1.MediateResponse
		if proto.Unmarshal(b, &resp) != nil {
			return
		}
		_, _ = resultsFromWire(&resp)
	})
}
