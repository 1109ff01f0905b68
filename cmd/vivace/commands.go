package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

func commands() []*cli.Command {
	return []*cli.Command{
		devCommand(),
		serveCommand(),
		topicsCommand(),
		migrateCommand(),
		ingestCommand(),
		filesCommand(),
		usageCommand(),
		exportCommand("murs", "MURs (monetized usage records)"),
		exceptionsCommand(),
		feedCommand(),
		lookupCommand(),
		syncCommand(),
		checkCommand(),
		configCommand(),
		fakeCoreCommand(),
		tokenCommand(),
	}
}

// newFormattedLogger is newLogger with a format: "json" (one object per
// line, for log collectors) or "text".
func newFormattedLogger(level, format string) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: logLevel(level)}
	switch format {
	case "json":
		return slog.New(&lastWins{inner: slog.NewJSONHandler(os.Stderr, opts)}), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not json or text", format)
}

func newLogger(level string) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel(level)}))
}

func logLevel(level string) slog.Level {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return l
}
