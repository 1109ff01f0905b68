package main

import (
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
		filesCommand(),
		usageCommand(),
		exportCommand("murs", "MURs (monetized usage records)"),
		exceptionsCommand(),
		feedCommand(),
		lookupCommand(),
		syncCommand(),
		configCommand(),
		fakeCoreCommand(),
		tokenCommand(),
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
