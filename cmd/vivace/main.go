// Command vivace is the one Vivace binary: the Benthos CLI (run, lint,
// test, list, streams…) with Vivace's components registered, plus Vivace's
// own commands (dev, migrate, ingest, feed, murs, exceptions, sync, …).
package main

import (
	"context"
	"os"
	"time"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/urfave/cli/v2"

	vbenthos "vivace.dev/vivace/plugins/benthos"
)

// testDatabaseWait is how long a component waits for an unreachable
// database under `vivace test` before the records that need it fail.
const testDatabaseWait = 5 * time.Second

// Set at build time with -ldflags "-X main.version=…".
var (
	version   = "dev"
	dateBuilt = ""
)

func main() {
	os.Exit(run(context.Background(), os.Args))
}

// run runs the CLI on args (args[0] is the binary) and returns its exit
// code.
func run(ctx context.Context, args []string) int {
	own := commands()
	args = flagsFirst(own, args)
	if len(args) == 1 {
		// Bare Benthos would read stdin and write stdout as a stream:
		// nothing a Vivace user means by running the binary alone.
		args = append(args, "--help")
	}
	// Benthos sets the top-level usage and description itself; the help
	// template is where Vivace's own words go in.
	cli.AppHelpTemplate = appHelpTemplate(cli.AppHelpTemplate)
	if len(args) > 1 && args[1] == "test" {
		vbenthos.SetDatabaseWait(testDatabaseWait)
	}
	restore := withLogService(args)
	opts := []service.CLIOptFunc{
		service.CLIOptSetArgs(args...),
		service.CLIOptSetBinaryName("vivace"),
		service.CLIOptSetProductName("Vivace"),
		service.CLIOptSetVersion(version, dateBuilt),
		service.CLIOptSetMainSchemaFrom(mainSchema),
	}
	for _, c := range own {
		opts = append(opts, service.CLIOptAddCommand(c))
	}
	code, err := service.RunCLIToCode(ctx, opts...)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
	}
	restore()
	return code
}
