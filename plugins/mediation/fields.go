package mediation

import (
	"errors"
	"fmt"

	"vivace.dev/vivace/plugins/mediation/mediationv1"
)

// ErrMalformed marks a request or answer that breaks the wire contract:
// field name positions past the names sent, lists of unequal length, a
// name twice in one record.
var ErrMalformed = errors.New("malformed message")

// names builds the list of field names a request or an answer shares.
type names struct {
	pos  map[string]uint32
	list []string
}

func newNames() *names { return &names{pos: make(map[string]uint32, 16)} }

// position returns k's position, adding it when new.
func (n *names) position(k string) uint32 {
	p, ok := n.pos[k]
	if !ok {
		p = uint32(len(n.list))
		n.pos[k] = p
		n.list = append(n.list, k)
	}
	return p
}

// append adds m's fields to ns and vs.
func (n *names) append(ns []uint32, vs []string, m map[string]string) ([]uint32, []string) {
	for k, v := range m {
		p, ok := n.pos[k]
		if !ok {
			p = uint32(len(n.list))
			n.pos[k] = p
			n.list = append(n.list, k)
		}
		ns = append(ns, p)
		vs = append(vs, v)
	}
	return ns, vs
}

// decodeFields turns parallel name positions and values into a map.
func decodeFields(list []string, ns []uint32, vs []string) (map[string]string, error) {
	if len(ns) != len(vs) {
		return nil, fmt.Errorf("%w: %d field names but %d values", ErrMalformed, len(ns), len(vs))
	}
	m := make(map[string]string, len(ns))
	for i, p := range ns {
		if int(p) >= len(list) {
			return nil, fmt.Errorf("%w: field name position %d is past the %d names sent", ErrMalformed, p, len(list))
		}
		m[list[p]] = vs[i]
	}
	if len(m) != len(ns) {
		return nil, fmt.Errorf("%w: a field name appears twice in one record", ErrMalformed)
	}
	return m, nil
}

// requestToWire encodes a batch. The records' field lists share one
// backing array, so a batch costs a handful of allocations besides its
// messages.
func requestToWire(records []RawRecord) *mediationv1.MediateRequest {
	total := 0
	for _, r := range records {
		total += len(r.Fields)
	}
	n := newNames()
	ns, vs := make([]uint32, 0, total), make([]string, 0, total)
	req := &mediationv1.MediateRequest{Records: make([]*mediationv1.RawRecord, len(records))}
	pbs := make([]mediationv1.RawRecord, len(records))
	for i, r := range records {
		pb := &pbs[i]
		pb.Client, pb.FileId, pb.Line = r.Client, r.FileID, r.Line
		start := len(ns)
		ns, vs = n.append(ns, vs, r.Fields)
		pb.Names, pb.Values = ns[start:len(ns):len(ns)], vs[start:len(vs):len(vs)]
		req.Records[i] = pb
	}
	req.Names = n.list
	return req
}

// requestFromWire decodes a batch on the plugin's side.
func requestFromWire(req *mediationv1.MediateRequest) ([]RawRecord, error) {
	in, list := req.GetRecords(), req.GetNames()
	recs := make([]RawRecord, len(in))
	for i, r := range in {
		f, err := decodeFields(list, r.GetNames(), r.GetValues())
		if err != nil {
			return nil, fmt.Errorf("record %d (line %d): %w", i+1, r.GetLine(), err)
		}
		recs[i] = RawRecord{Client: r.GetClient(), FileID: r.GetFileId(), Line: r.GetLine(), Fields: f}
	}
	return recs, nil
}

// resultsToWire encodes a plugin's answer. The host checks it; nothing is
// corrected here, so that a faulty plugin is seen as one.
func resultsToWire(in []Result) *mediationv1.MediateResponse {
	total, parts := 0, 0
	for _, r := range in {
		parts += len(r.Records)
		for _, m := range r.Records {
			total += len(m)
		}
	}
	n := newNames()
	ns, vs := make([]uint32, 0, total), make([]string, 0, total)
	counts := make([]uint32, 0, parts)
	out := make([]*mediationv1.RecordResult, len(in))
	blocks := make([]mediationv1.RecordResult, len(in))
	for i, r := range in {
		res := &blocks[i]
		switch {
		case r.Error != nil:
			res.Outcome = mediationv1.Outcome_OUTCOME_ERROR
			res.Code, res.Field, res.Message = r.Error.Code, r.Error.Field, r.Error.Message
		case r.Filtered != "":
			res.Outcome = mediationv1.Outcome_OUTCOME_FILTERED
			res.Message = r.Filtered
		case r.Records != nil:
			res.Outcome = mediationv1.Outcome_OUTCOME_MEDIATED
			c0, f0 := len(counts), len(ns)
			for _, m := range r.Records {
				counts = append(counts, uint32(len(m)))
				ns, vs = n.append(ns, vs, m)
			}
			res.FieldCounts = counts[c0:len(counts):len(counts)]
			res.Names, res.Values = ns[f0:len(ns):len(ns)], vs[f0:len(vs):len(vs)]
		}
		out[i] = res
	}
	return &mediationv1.MediateResponse{Names: n.list, Results: out}
}

// resultsFromWire decodes an answer on the host's side. A result with no
// outcome becomes a Result with nothing set, which the host rejects by
// line; a result that breaks the wire contract fails the whole answer.
func resultsFromWire(resp *mediationv1.MediateResponse) ([]Result, error) {
	in, list := resp.GetResults(), resp.GetNames()
	out := make([]Result, len(in))
	for i, r := range in {
		switch r.GetOutcome() {
		case mediationv1.Outcome_OUTCOME_MEDIATED:
			counts, ns, vs := r.GetFieldCounts(), r.GetNames(), r.GetValues()
			recs := make([]map[string]string, len(counts))
			at := 0
			for j, c := range counts {
				if uint64(at)+uint64(c) > uint64(len(ns)) {
					return nil, fmt.Errorf("%w: result %d: field counts add up to more than the %d fields sent", ErrMalformed, i+1, len(ns))
				}
				m, err := decodeFields(list, ns[at:at+int(c)], vs[at:min(at+int(c), len(vs))])
				if err != nil {
					return nil, fmt.Errorf("result %d, record %d: %w", i+1, j+1, err)
				}
				recs[j], at = m, at+int(c)
			}
			if at != len(ns) || len(ns) != len(vs) {
				return nil, fmt.Errorf("%w: result %d: %d field names and %d values for field counts adding up to %d",
					ErrMalformed, i+1, len(ns), len(vs), at)
			}
			out[i].Records = recs
		case mediationv1.Outcome_OUTCOME_ERROR:
			out[i].Error = &RecordError{Code: r.GetCode(), Field: r.GetField(), Message: r.GetMessage()}
		case mediationv1.Outcome_OUTCOME_FILTERED:
			out[i].Filtered = r.GetMessage()
			if out[i].Filtered == "" {
				// Filtered without a reason is still filtered.
				out[i].Filtered = "filtered by the plugin"
			}
		}
	}
	return out, nil
}
