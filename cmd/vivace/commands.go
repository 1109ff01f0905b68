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
		migrateCommand(),
		ingestCommand(),
		usageCommand(),
		exportCommand("murs", "MURs (monetized usage records)"),
		exportCommand("exceptions", "exceptions (records that did not become MURs)"),
		feedCommand(),
		lookupCommand(),
		syncCommand(),
		configCommand(),
		fakeCoreCommand(),
		notYet("token", "create API tokens", "API tokens"),
	}
}

// notYet is a command whose feature is not in this version: it says so
// and exits non-zero rather than pretend.
func notYet(name, usage, feature string) *cli.Command {
	return &cli.Command{
		Name:            name,
		Usage:           usage + " (not in this version yet)",
		SkipFlagParsing: true,
		Action: func(*cli.Context) error {
			return cli.Exit(fmt.Sprintf("vivace %s: %s is not available in this version of Vivace yet", name, feature), 2)
		},
	}
}

func newLogger(level string) *slog.Logger {
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
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func databaseURL() string {
	if v := os.Getenv("DATABASE_URL"); v != "" {
		return v
	}
	return ""
}
