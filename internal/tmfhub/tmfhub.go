// Package tmfhub delivers TMF635 hub callbacks (docs/tmf635.md, "Hub"):
// it takes the due rows of the durable callback queue, builds each
// usage's UsageCreateEvent or UsageStateChangeEvent, and POSTs it to the
// subscriber's listener. A row is deleted only once the listener answered
// 2xx; any other answer, or none, leaves it for after a backoff, so every
// callback is delivered at least once, and each usage's in order.
package tmfhub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"vivace.dev/vivace/internal/tmf635"
)

// Deliverer sends the queue's callbacks.
type Deliverer struct {
	// Take is the queue's Deliver over the store's rows as Deliveries.
	Take func(ctx context.Context, limit int, send func(tmf635.Delivery) error) (int, error)
	// Usage loads a usage by its source.
	Usage func(ctx context.Context, fileID string, line int64, part int) (tmf635.Record, error)
	// Base is the API's absolute URL (scheme, host, BasePath), for hrefs.
	Base   string
	Client *http.Client
	Logger *slog.Logger
	// Interval is how often the queue is looked at; 0 means 200ms.
	Interval time.Duration
}

// Run delivers until ctx ends.
func (d *Deliverer) Run(ctx context.Context) {
	every := d.Interval
	if every <= 0 {
		every = 200 * time.Millisecond
	}
	for {
		n, err := d.Once(ctx)
		if err != nil && ctx.Err() == nil {
			d.log().Error("hub callbacks", "err", err)
		}
		if n > 0 && err == nil {
			continue // more may be due
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// Once sends the callbacks due now (up to 100) and returns how many it
// tried.
func (d *Deliverer) Once(ctx context.Context) (int, error) {
	return d.Take(ctx, 100, func(x tmf635.Delivery) error { return d.send(ctx, x) })
}

func (d *Deliverer) send(ctx context.Context, x tmf635.Delivery) error {
	q, err := tmf635.ParseHubQuery(x.Hub.Query)
	if err != nil {
		return nil // checked when subscribed; a query no longer read wants nothing
	}
	rec, err := d.Usage(ctx, x.FileID, x.Line, x.Part)
	if err != nil {
		return fmt.Errorf("usage %s: %w", tmf635.ID(x.FileID, x.Line, x.Part), err)
	}
	eventType := tmf635.StateChangeEvent
	if x.Kind == "create" {
		eventType = tmf635.CreateEvent
	}
	u := tmf635.Build(&rec, d.Base)
	u.Status = x.Status
	if !q.Wants(eventType, &u) {
		return nil
	}
	ev := tmf635.NewEvent(x.Hub.ID+"-"+strconv.FormatInt(x.Seq, 10), eventType, u, x.Status, x.CreatedAt, time.Now())
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, x.Hub.Callback+tmf635.ListenerPath(eventType), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json;charset=utf-8")
	c := d.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		d.log().Warn("hub callback failed; it is sent again later", "hub", x.Hub.ID, "usage", u.ID, "err", err)
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		d.log().Warn("hub callback refused; it is sent again later", "hub", x.Hub.ID, "usage", u.ID, "status", resp.StatusCode)
		return fmt.Errorf("listener answered %s", resp.Status)
	}
	return nil
}

func (d *Deliverer) log() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}
