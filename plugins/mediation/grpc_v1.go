package mediation

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vivace.dev/vivace/plugins/mediation/mediationv1"
)

// GRPCPlugin adapts a Mediator to go-plugin's gRPC transport for protocol
// version 1. Impl is set on the plugin side and nil on the host side.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Mediator
}

// GRPCServer registers the plugin's implementation.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	mediationv1.RegisterMediatorServer(s, &grpcServer{impl: p.Impl})
	return nil
}

// GRPCClient returns a Mediator that calls the plugin.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &grpcClient{c: mediationv1.NewMediatorClient(c)}, nil
}

// grpcClient is the host's view of a plugin.
type grpcClient struct{ c mediationv1.MediatorClient }

func (g *grpcClient) Describe(ctx context.Context) (Info, error) {
	r, err := g.c.Describe(ctx, &mediationv1.DescribeRequest{})
	if err != nil {
		return Info{}, err
	}
	return Info{Name: r.GetName(), Version: r.GetVersion(), Description: r.GetDescription()}, nil
}

func (g *grpcClient) Configure(ctx context.Context, client string, config json.RawMessage) error {
	_, err := g.c.Configure(ctx, &mediationv1.ConfigureRequest{Client: client, ConfigJson: config})
	return err
}

// MediateBatch unpacks b into records with maps, as version 1 carries
// them.
func (g *grpcClient) MediateBatch(ctx context.Context, b *Batch) ([]Reply, error) {
	recs, err := b.records()
	if err != nil {
		return nil, err
	}
	results, err := g.Mediate(ctx, recs)
	if err != nil {
		return nil, err
	}
	return repliesFromResults(results), nil
}

func (g *grpcClient) Mediate(ctx context.Context, records []RawRecord) ([]Result, error) {
	resp, err := g.c.Mediate(ctx, requestToWire(records))
	if err != nil {
		return nil, err
	}
	return resultsFromWire(resp)
}

// grpcServer serves a plugin's implementation.
type grpcServer struct {
	mediationv1.UnimplementedMediatorServer
	impl Mediator
}

func (s *grpcServer) Describe(ctx context.Context, _ *mediationv1.DescribeRequest) (*mediationv1.DescribeResponse, error) {
	info, err := s.impl.Describe(ctx)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &mediationv1.DescribeResponse{Name: info.Name, Version: info.Version, Description: info.Description}, nil
}

func (s *grpcServer) Configure(ctx context.Context, req *mediationv1.ConfigureRequest) (*mediationv1.ConfigureResponse, error) {
	cfg := req.GetConfigJson()
	if len(cfg) == 0 {
		cfg = []byte("{}")
	}
	if err := s.impl.Configure(ctx, req.GetClient(), json.RawMessage(cfg)); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &mediationv1.ConfigureResponse{}, nil
}

func (s *grpcServer) Mediate(ctx context.Context, req *mediationv1.MediateRequest) (*mediationv1.MediateResponse, error) {
	recs, err := requestFromWire(req)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	results, err := s.impl.Mediate(ctx, recs)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return resultsToWire(results), nil
}

// records unpacks a batch into records for a plugin's Mediate. The values
// are substrings of one copy of the buffer.
func (b *Batch) records() ([]RawRecord, error) {
	return unpackRecords(b.names, len(b.lines), string(b.packed()))
}

// repliesFromResults turns the results of a version-1 plugin into Replies,
// each record's fields in name order.
func repliesFromResults(in []Result) []Reply {
	out := make([]Reply, len(in))
	for i, r := range in {
		out[i] = Reply{Error: r.Error, Filtered: r.Filtered}
		if r.Records == nil {
			continue
		}
		out[i].Records = make([]Fields, len(r.Records))
		for j, m := range r.Records {
			f := make(Fields, 0, len(m))
			for k, v := range m {
				f = append(f, Field{k, v})
			}
			slices.SortFunc(f, func(a, b Field) int { return strings.Compare(a.Name, b.Name) })
			out[i].Records[j] = f
		}
	}
	return out
}

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
