package mediation

import (
	"context"
	"encoding/json"

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
