package mediation

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"unsafe"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vivace.dev/vivace/plugins/mediation/mediationv2"
)

// GRPCPluginV2 adapts a Mediator to go-plugin's gRPC transport for protocol
// version 2. Impl is set on the plugin side and nil on the host side.
type GRPCPluginV2 struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Mediator
}

// GRPCServer registers the plugin's implementation.
func (p *GRPCPluginV2) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	mediationv2.RegisterMediatorServer(s, &grpcServerV2{impl: p.Impl})
	return nil
}

// GRPCClient returns a Caller that calls the plugin.
func (p *GRPCPluginV2) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &grpcClientV2{c: mediationv2.NewMediatorClient(c)}, nil
}

// grpcClientV2 is the host's view of a plugin speaking version 2.
type grpcClientV2 struct{ c mediationv2.MediatorClient }

func (g *grpcClientV2) Describe(ctx context.Context) (Info, error) {
	r, err := g.c.Describe(ctx, &mediationv2.DescribeRequest{})
	if err != nil {
		return Info{}, err
	}
	return Info{Name: r.GetName(), Version: r.GetVersion(), Description: r.GetDescription()}, nil
}

func (g *grpcClientV2) Configure(ctx context.Context, client string, config json.RawMessage) error {
	_, err := g.c.Configure(ctx, &mediationv2.ConfigureRequest{Client: client, ConfigJson: config})
	return err
}

func (g *grpcClientV2) MediateBatch(ctx context.Context, b *Batch) ([]Reply, error) {
	resp, err := g.c.Mediate(ctx, &mediationv2.MediateRequest{Names: b.names, Count: uint32(b.Len()), Records: b.packed()})
	if err != nil {
		return nil, err
	}
	return unpackReplies(resp)
}

// grpcServerV2 serves a plugin's implementation over version 2.
type grpcServerV2 struct {
	mediationv2.UnimplementedMediatorServer
	impl Mediator
}

func (s *grpcServerV2) Describe(ctx context.Context, _ *mediationv2.DescribeRequest) (*mediationv2.DescribeResponse, error) {
	info, err := s.impl.Describe(ctx)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &mediationv2.DescribeResponse{Name: info.Name, Version: info.Version, Description: info.Description}, nil
}

func (s *grpcServerV2) Configure(ctx context.Context, req *mediationv2.ConfigureRequest) (*mediationv2.ConfigureResponse, error) {
	cfg := req.GetConfigJson()
	if len(cfg) == 0 {
		cfg = []byte("{}")
	}
	if err := s.impl.Configure(ctx, req.GetClient(), json.RawMessage(cfg)); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &mediationv2.ConfigureResponse{}, nil
}

func (s *grpcServerV2) Mediate(ctx context.Context, req *mediationv2.MediateRequest) (*mediationv2.MediateResponse, error) {
	recs, err := unpackRecords(req.GetNames(), int(req.GetCount()), owned(req.GetRecords()))
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	results, err := s.impl.Mediate(ctx, recs)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return packResults(results), nil
}

// reader reads a packed buffer, remembering the first fault.
type reader struct {
	s     string
	at    int
	names []string
	err   error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: byte %d: %s", ErrMalformed, r.at, fmt.Sprintf(format, args...))
	}
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	// The common case: one byte.
	if r.at < len(r.s) && r.s[r.at] < 0x80 {
		r.at++
		return uint64(r.s[r.at-1])
	}
	var x uint64
	var s uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if r.at >= len(r.s) {
			r.fail("the data ends inside a number")
			return 0
		}
		c := r.s[r.at]
		r.at++
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break
			}
			return x | uint64(c)<<s
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	r.fail("a number overflows 64 bits")
	return 0
}

func (r *reader) varint() int64 {
	u := r.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (r *reader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.s)-r.at) {
		r.fail("a string of %d bytes runs past the end", n)
		return ""
	}
	s := r.s[r.at : r.at+int(n)]
	r.at += int(n)
	return s
}

// name reads a name; ok is false at the zero that ends a record.
func (r *reader) name() (string, bool) {
	p := r.uvarint()
	if r.err != nil || p == 0 {
		return "", false
	}
	if p > uint64(len(r.names)) {
		r.fail("name %d is past the %d names sent", p, len(r.names))
		return "", false
	}
	return r.names[p-1], true
}

func (r *reader) mustName() string {
	s, ok := r.name()
	if !ok && r.err == nil {
		r.fail("a name is missing")
	}
	return s
}

// fields reads fields up to the zero that ends a record into dst, checking
// that no name appears twice.
func (r *reader) fields(dst []Field) []Field {
	start := len(dst)
	for {
		name, ok := r.name()
		if !ok {
			return dst
		}
		for _, f := range dst[start:] {
			if f.Name == name {
				r.fail("field %s appears twice in one record", name)
				return dst
			}
		}
		dst = append(dst, Field{Name: name, Value: r.str()})
	}
}

func (r *reader) end(what string, n int) error {
	if r.err == nil && r.at != len(r.s) {
		r.fail("%d bytes left after %d %s", len(r.s)-r.at, n, what)
	}
	return r.err
}

// unpackRecords reads count records from packed; their strings are
// substrings of it.
func unpackRecords(names []string, count int, packed string) ([]RawRecord, error) {
	r := &reader{s: packed, names: names}
	if uint64(count) > uint64(len(packed)) {
		return nil, fmt.Errorf("%w: %d records in %d bytes", ErrMalformed, count, len(packed))
	}
	recs := make([]RawRecord, count)
	var tmp []Field
	for i := range recs {
		rec := &recs[i]
		rec.Client = r.mustName()
		rec.FileID = r.mustName()
		rec.Line = r.varint()
		tmp = r.fields(tmp[:0])
		if r.err != nil {
			return nil, fmt.Errorf("record %d (line %d): %w", i+1, rec.Line, r.err)
		}
		rec.Fields = make(map[string]string, len(tmp))
		for _, f := range tmp {
			rec.Fields[f.Name] = f.Value
		}
	}
	if err := r.end("records", count); err != nil {
		return nil, err
	}
	return recs, nil
}

// packResults encodes a plugin's answer for protocol version 2. Nothing is
// corrected here, so that a faulty plugin is seen as one.
func packResults(in []Result) *mediationv2.MediateResponse {
	size := 0
	for _, r := range in {
		for _, m := range r.Records {
			for k, v := range m {
				size += len(k)/4 + len(v) + 3 // names mostly repeat
			}
		}
		size += 4
	}
	n := newNames()
	buf := make([]byte, 0, size)
	for _, r := range in {
		switch {
		case r.Error != nil:
			buf = append(buf, byte(mediationv2.Outcome_OUTCOME_ERROR))
			buf = appendString(buf, r.Error.Code)
			buf = appendString(buf, r.Error.Field)
			buf = appendString(buf, r.Error.Message)
		case r.Filtered != "":
			buf = append(buf, byte(mediationv2.Outcome_OUTCOME_FILTERED))
			buf = appendString(buf, r.Filtered)
		case r.Records != nil:
			buf = append(buf, byte(mediationv2.Outcome_OUTCOME_MEDIATED))
			buf = binary.AppendUvarint(buf, uint64(len(r.Records)))
			for _, m := range r.Records {
				for k, v := range m {
					buf = binary.AppendUvarint(buf, uint64(n.position(k))+1)
					buf = appendString(buf, v)
				}
				buf = append(buf, 0)
			}
		default:
			buf = append(buf, byte(mediationv2.Outcome_OUTCOME_UNSPECIFIED))
		}
	}
	return &mediationv2.MediateResponse{Names: n.list, Count: uint32(len(in)), Results: buf}
}

// unpackReplies decodes an answer of protocol version 2 on the host's
// side. A result with no outcome becomes a Reply with nothing set, which
// the host rejects by line; a result that breaks the packing fails the
// whole answer. The values are substrings of one copy of the buffer.
func unpackReplies(resp *mediationv2.MediateResponse) ([]Reply, error) {
	packed, count := resp.GetResults(), int(resp.GetCount())
	if uint64(count) > uint64(len(packed)) {
		return nil, fmt.Errorf("%w: %d results in %d bytes", ErrMalformed, count, len(packed))
	}
	r := &reader{s: owned(packed), names: resp.GetNames()}
	out := make([]Reply, count)
	// Room for every record to have every name once, as most do; never
	// more than the bytes allow.
	fields := make([]Field, 0, min(count*len(r.names), len(packed)/2))
	recs := make([]Fields, 0, count)
	for i := range out {
		switch o := r.uvarint(); mediationv2.Outcome(o) {
		case mediationv2.Outcome_OUTCOME_MEDIATED:
			parts := r.uvarint()
			if parts == 0 || parts > uint64(len(r.s)-r.at) {
				r.fail("result %d: %d records", i+1, parts)
				break
			}
			r0 := len(recs)
			for range parts {
				f0 := len(fields)
				fields = r.fields(fields)
				recs = append(recs, fields[f0:len(fields):len(fields)])
			}
			out[i].Records = recs[r0:len(recs):len(recs)]
		case mediationv2.Outcome_OUTCOME_ERROR:
			out[i].Error = &RecordError{Code: r.str(), Field: r.str(), Message: r.str()}
		case mediationv2.Outcome_OUTCOME_FILTERED:
			out[i].Filtered = r.str()
			if out[i].Filtered == "" {
				// Filtered without a reason is still filtered.
				out[i].Filtered = "filtered by the plugin"
			}
		case mediationv2.Outcome_OUTCOME_UNSPECIFIED:
		default:
			r.fail("result %d: unknown outcome %d", i+1, o)
		}
		if r.err != nil {
			return nil, fmt.Errorf("result %d: %w", i+1, r.err)
		}
	}
	if err := r.end("results", count); err != nil {
		return nil, err
	}
	return out, nil
}

// owned returns b as a string without copying it. b must be a buffer
// nobody writes to any more: a bytes field protobuf decoded into a message
// of its own (it copies the field out of gRPC's buffer), which the caller
// drops once read. The strings read from it keep it alive.
func owned(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}
