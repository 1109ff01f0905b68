package mediation

import (
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

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
