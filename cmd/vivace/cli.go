package main

import (
	"bufio"
	"io"
	"os"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/urfave/cli/v2"
)

// appUsage and appDescription are what `vivace --help` says of Vivace.
const appUsage = "usage files in, rated and discounted usage records (MURs) out"

const appDescription = `Vivace turns raw usage (call records, API calls, gigabytes, minutes) into money.
Usage files arrive from an inbox directory, an HTTP upload or an S3 bucket; each
record is mediated, rated against the catalog the core billing system feeds,
discounted and stored in PostgreSQL as a monetized usage record (MUR). A record
that cannot be rated becomes an exception with a stable code, its file and line.

First steps, on one machine:

  vivace dev                                      broker, database, pipelines, API on :8080
  vivace feed publish --wait catalog.jsonl        load the catalog (core feed events)
  vivace ingest --client acme --wait usage.csv    submit a usage file, print its counts
  vivace murs export --client acme                the rated records
  vivace exceptions export --client acme          the records that were not rated

The pipelines are Benthos streams: run, lint, test and list work on them
(vivace test ./pipelines/...). "vivace COMMAND --help" says more of each
command; docs/cli.md lists them all.`

// appHelpTemplate is urfave/cli's help template for the top level with
// Vivace's usage line and description in place of the ones Benthos sets.
func appHelpTemplate(tmpl string) string {
	return strings.NewReplacer(
		`{{template "helpNameTemplate" .}}`, `{{.HelpName}} - `+appUsage,
		`{{template "descriptionTemplate" .}}`, indent(appDescription, "   "),
	).Replace(tmpl)
}

// indent puts prefix before every line of s but the first, leaving empty
// lines empty.
func indent(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i := 1; i < len(lines); i++ {
		if lines[i] != "" {
			lines[i] = prefix + lines[i]
		}
	}
	return strings.Join(lines, "\n")
}

// logService is the @service field of every log line the Benthos commands
// write.
const logService = "vivace"

// mainSchema is Benthos' config schema with Vivace's logger defaults: the
// run and streams commands take the @service field from it.
func mainSchema() *service.ConfigSchema {
	s := service.GlobalEnvironment().FullConfigSchema(version, dateBuilt)
	s.SetFieldDefault(map[string]any{"@service": logService}, "logger", "static_fields")
	return s
}

// withLogService makes `vivace test --log LEVEL` name Vivace in its log
// lines. That command builds its logger from Benthos' built-in defaults,
// which no CLI option reaches, and writes to standard output; so for it,
// standard output goes through a filter that renames the field. The
// returned function flushes the filter; call it before exiting.
func withLogService(args []string) (restore func()) {
	if len(args) < 2 || args[1] != "test" {
		return func() {}
	}
	out := os.Stdout
	r, w, err := os.Pipe()
	if err != nil {
		return func() {}
	}
	os.Stdout = w
	done := make(chan struct{})
	go func() {
		defer close(done)
		renameService(out, r)
	}()
	restore = func() {
		os.Stdout = out
		_ = w.Close()
		<-done
	}
	exiter := cli.OsExiter
	cli.OsExiter = func(code int) { restore(); exiter(code) }
	return restore
}

// renameService copies r to w line by line, with Benthos' @service field
// renamed to Vivace's.
func renameService(w io.Writer, r io.Reader) {
	rn := strings.NewReplacer("@service=redpanda-benthos", "@service="+logService,
		`"@service":"redpanda-benthos"`, `"@service":"`+logService+`"`)
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			_, _ = io.WriteString(w, rn.Replace(line))
		}
		if err != nil {
			return
		}
	}
}

// flagsFirst moves the flags that follow the arguments of one of Vivace's
// own commands in front of them, so that `vivace ingest --client acme
// f.csv --wait` means what it says: the command-line parser stops at the
// first argument and would take --wait for a file. A "--" ends the flags:
// what follows it stays an argument.
func flagsFirst(own []*cli.Command, args []string) []string {
	if len(args) < 2 {
		return args
	}
	cmds := own
	var cmd *cli.Command
	i := 1
	for i < len(args) {
		next := find(cmds, args[i])
		if next == nil {
			break
		}
		cmd, cmds = next, next.Subcommands
		i++
	}
	if cmd == nil || cmd.SkipFlagParsing || len(cmd.Subcommands) > 0 {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range append(cmd.Flags, cli.HelpFlag) {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var flags, rest []string
	for j := i; j < len(args); j++ {
		a := args[j]
		switch {
		case a == "--":
			rest = append(rest, args[j:]...)
			j = len(args)
		case len(a) > 1 && a[0] == '-':
			flags = append(flags, a)
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if takesValue[name] && !hasValue && j+1 < len(args) {
				j++
				flags = append(flags, args[j])
			}
		default:
			rest = append(rest, a)
		}
	}
	out := append(append([]string{}, args[:i]...), flags...)
	return append(out, rest...)
}

func find(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
