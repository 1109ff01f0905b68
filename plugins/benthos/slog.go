package benthos

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// slogOf lets domain packages that log with log/slog write to a
// component's Benthos logger, attributes as key=value after the message.
func slogOf(l *service.Logger) *slog.Logger { return slog.New(&slogHandler{l: l}) }

type slogHandler struct {
	l     *service.Logger
	attrs []slog.Attr
	group string
}

func (h *slogHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	write := func(a slog.Attr) bool {
		k := a.Key
		if h.group != "" {
			k = h.group + "." + k
		}
		fmt.Fprintf(&b, " %s=%v", k, a.Value.Resolve())
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	switch {
	case r.Level >= slog.LevelError:
		h.l.Error(b.String())
	case r.Level >= slog.LevelWarn:
		h.l.Warn(b.String())
	case r.Level >= slog.LevelInfo:
		h.l.Info(b.String())
	default:
		h.l.Debug(b.String())
	}
	return nil
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &n
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	n := *h
	if n.group != "" {
		name = n.group + "." + name
	}
	n.group = name
	return &n
}
