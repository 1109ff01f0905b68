// Command vivace is the one Vivace binary: the Benthos CLI (run, lint,
// test, list, streams…) with Vivace's components registered, plus Vivace's
// own commands (dev, migrate, ingest, feed, murs, exceptions, sync, …).
package main

import (
	"context"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	_ "vivace.dev/vivace/plugins/benthos"
)

// Set at build time with -ldflags "-X main.version=…".
var (
	version   = "dev"
	dateBuilt = ""
)

func main() {
	opts := []service.CLIOptFunc{
		service.CLIOptSetBinaryName("vivace"),
		service.CLIOptSetProductName("Vivace"),
		service.CLIOptSetVersion(version, dateBuilt),
	}
	for _, c := range commands() {
		opts = append(opts, service.CLIOptAddCommand(c))
	}
	service.RunCLI(context.Background(), opts...)
}
