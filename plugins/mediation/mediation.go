// Package mediation is the contract between Vivace's mediate stage and a
// client's mediation plugin: the Go interface a plugin implements, the
// go-plugin handshake and plugin maps both sides share, the gRPC adapters
// for the wire contract of each protocol version (mediationv1 and
// mediationv2/mediation.proto; packed.go has version 2's packing), and
// Serve, which a plugin's main function calls.
//
// A plugin is a program of its own, started by the host with
// github.com/hashicorp/go-plugin over gRPC with mutual TLS. The host sends
// whole batches of raw records; the plugin answers, per record and in
// order, with the records in normal form, an error, or a reason to filter
// the record out. docs/plugins.md describes the contract for plugin authors.
package mediation

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vivace.dev/vivace/plugins/mediation/mediationv1"
)

// ProtocolVersion is the newest version of the contract this package
// speaks. It changes only when a plugin built for the previous version
// could no longer be understood (docs/plugins.md, "Versioning"). Version
// 2 packs a batch's records into one buffer (mediationv2); a plugin built
// with this package serves version 1 too, for hosts that know only that.
const ProtocolVersion = 2

// SupportedVersions lists the protocol versions the host accepts, oldest
// first.
var SupportedVersions = []int{1, 2}

// SupportedVersionsText is SupportedVersions for messages: "1" or "1, 2".
func SupportedVersionsText() string {
	s := make([]string, len(SupportedVersions))
	for i, v := range SupportedVersions {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ", ")
}

// Handshake is what the host and a plugin check before they talk: the
// magic cookie tells a plugin it was started by a Vivace host (run by
// hand it says so and exits), and the protocol version which contract it
// speaks.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "VIVACE_MEDIATION_PLUGIN",
	MagicCookieValue: "b7d3f0e2-mediation",
}

// PluginName is the one plugin a mediation plugin binary serves.
const PluginName = "mediator"

// MaxMessageBytes bounds one request or answer on the wire, both ways.
// gRPC's own default (4 MiB) is too small for large batches of wide
// records.
const MaxMessageBytes = 256 << 20

// FlowWindowBytes is the HTTP/2 flow-control window on both sides. A batch
// of a thousand records is a few hundred kilobytes; with gRPC's default
// window it would cross the process boundary in several round trips of
// window updates, each a wake-up of both processes.
const FlowWindowBytes = 16 << 20

// PluginMap is the host's plugin set for protocol version 1: the plugin's
// name with an adapter that has no implementation (the host only
// dispenses clients).
var PluginMap = plugin.PluginSet{PluginName: &GRPCPlugin{}}

// PluginMapV2 is PluginMap for protocol version 2.
var PluginMapV2 = plugin.PluginSet{PluginName: &GRPCPluginV2{}}

// VersionedPlugins maps every supported protocol version to its plugin
// set, for plugin.ClientConfig.VersionedPlugins.
func VersionedPlugins() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{1: PluginMap, 2: PluginMapV2}
}

// RawRecord is one input record: its client, file and line, and its
// fields as the ingest stage mapped them.
type RawRecord struct {
	Client string
	FileID string
	Line   int64
	Fields map[string]string
}

// Result is what became of one input record. Exactly one of Records (one
// or more), Error and Filtered is set; Mediated, Fail and Filter build
// each kind.
type Result struct {
	// Records are the mediated records in normal form; more than one
	// splits the input record.
	Records []map[string]string
	// Error says why the record cannot be mediated.
	Error *RecordError
	// Filtered, when not empty, is why the record was dropped on purpose.
	Filtered string
}

// RecordError is a record-level failure. Code is a stable exception code
// (empty: MEDIATION_FAILED); Field names the input field at fault.
type RecordError struct {
	Code    string
	Field   string
	Message string
}

func (e *RecordError) Error() string {
	code := e.Code
	if code == "" {
		code = CodeMediationFailed
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", code, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", code, e.Message)
}

// CodeMediationFailed is the code of a RecordError that names none.
const CodeMediationFailed = "MEDIATION_FAILED"

// Mediated is a Result with records in normal form.
func Mediated(records ...map[string]string) Result { return Result{Records: records} }

// Fail is a Result for a record that cannot be mediated, with code
// MEDIATION_FAILED and the field at fault (empty when none).
func Fail(field, format string, args ...any) Result {
	return Result{Error: &RecordError{Code: CodeMediationFailed, Field: field, Message: fmt.Sprintf(format, args...)}}
}

// Filter is a Result for a record dropped on purpose.
func Filter(reason string) Result { return Result{Filtered: reason} }

// Info describes a plugin.
type Info struct {
	Name        string
	Version     string
	Description string
}

// Mediator is what a mediation plugin implements. The host calls Describe
// and then Configure once after each start, then Mediate for every batch,
// possibly from several goroutines at once.
type Mediator interface {
	Describe(ctx context.Context) (Info, error)
	// Configure gets the client's plugin.config block as a JSON object.
	Configure(ctx context.Context, client string, config json.RawMessage) error
	// Mediate returns one Result per record, in order. An error fails the
	// whole batch: the host retries it, and marks every record failed
	// with PLUGIN_ERROR when the retries run out.
	Mediate(ctx context.Context, records []RawRecord) ([]Result, error)
}

// ServeConfig is the go-plugin configuration that Serve uses. Plugins
// that need to adjust it (a test speaking another protocol version, say)
// start from here: Plugins holds the newest version, under Handshake's
// protocol version, and VersionedPlugins the older ones; a plugin that is
// to speak exactly one version sets Plugins and clears VersionedPlugins.
func ServeConfig(impl Mediator) *plugin.ServeConfig {
	return &plugin.ServeConfig{
		HandshakeConfig: Handshake,
		// The newest version under Handshake's number; go-plugin offers
		// the host the newest version both sides know.
		Plugins:          plugin.PluginSet{PluginName: &GRPCPluginV2{Impl: impl}},
		VersionedPlugins: map[int]plugin.PluginSet{1: {PluginName: &GRPCPlugin{Impl: impl}}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes),
				grpc.InitialWindowSize(FlowWindowBytes), grpc.InitialConnWindowSize(FlowWindowBytes))...)
		},
	}
}

// Serve runs impl as a plugin until the host stops it. A plugin's main
// function calls it and nothing else; started by hand, the program says
// it is a plugin and exits.
//
// Unless GOGC is set, Serve lets the heap grow to five times the live data
// before collecting (GOGC=400): a plugin keeps almost nothing between
// batches, so with Go's default it would collect garbage after nearly
// every batch, and that costs more than the few megabytes saved.
//
// With VIVACE_PLUGIN_CPUPROFILE set to a file name in its environment (the
// host passes its own on), the plugin writes a CPU profile of its whole
// run there when the host stops it, for `go tool pprof`.
func Serve(impl Mediator) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if path := os.Getenv(CPUProfileEnv); path != "" {
		if stop, err := startCPUProfile(path); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", CPUProfileEnv, err)
		} else {
			defer stop()
		}
	}
	plugin.Serve(ServeConfig(impl))
}

// CPUProfileEnv names the environment variable that makes Serve write a
// CPU profile.
const CPUProfileEnv = "VIVACE_PLUGIN_CPUPROFILE"

func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

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

// IsSupported reports whether the host accepts protocol version v.
func IsSupported(v int) bool { return slices.Contains(SupportedVersions, v) }
