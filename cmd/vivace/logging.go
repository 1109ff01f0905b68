package main

import (
	"context"
	"log/slog"
)

// lastWins is a slog handler that keeps one attribute per key, the last
// one given: Benthos names a component's place by adding "path" (and
// "label") once per level of nesting, which in JSON would be the same key
// several times in one object. Log collectors keep one of them at random,
// or refuse the line.
type lastWins struct {
	inner slog.Handler // without the attributes below
	attrs []slog.Attr
}

func (h *lastWins) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *lastWins) WithAttrs(as []slog.Attr) slog.Handler {
	return &lastWins{inner: h.inner, attrs: merge(h.attrs, as)}
}

func (h *lastWins) WithGroup(name string) slog.Handler {
	// Attributes before a group stay outside it: hand them to the inner
	// handler as they are.
	return h.inner.WithAttrs(h.attrs).WithGroup(name)
}

func (h *lastWins) Handle(ctx context.Context, r slog.Record) error {
	own := make([]slog.Attr, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool { own = append(own, a); return true })
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(merge(h.attrs, own)...)
	return h.inner.Handle(ctx, out)
}

// merge appends as to base, a key already there taking the new value in
// its old place.
func merge(base, as []slog.Attr) []slog.Attr {
	out := append(make([]slog.Attr, 0, len(base)+len(as)), base...)
next:
	for _, a := range as {
		for i := range out {
			if out[i].Key == a.Key {
				out[i] = a
				continue next
			}
		}
		out = append(out, a)
	}
	return out
}
