package benthos

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"vivace.dev/vivace/internal/ariafeed"
	"vivace.dev/vivace/internal/store/catalogstore"
)

func ariaFeedInputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Vivace").
		Summary("Reads the core billing system's native Data Feed (server-sent events with OAuth2 client credentials) and emits Vivace core feed events.").
		Description(`
Connects to an Aria-style Data Feed: a W3C EventSource stream over HTTPS, authorised with an
OAuth2 access token obtained by the client credentials grant (renewed before it expires, and
again when the server refuses it). Each feed event is `+"`load`, `create`, `update` or `delete`"+`
with two data lines, a header `+"`{\"ref\":{\"type\",\"ids\"},\"tstamp\",\"tick\"}`"+` and the entity.

Entities become core feed events (the `+"`core.feed`"+` format) for one client:
`+"`Account`"+` → account, `+"`Usage_Type`"+` → usage_type, `+"`Plan`"+` (with its rate schedules) → plan,
`+"`Plan_Instance`"+` → subscription, `+"`Discount_Rule`"+` → discount. Other types (contacts,
payment methods, ...) are counted in `+"`vivace_aria_feed_skipped`"+` and acknowledged. The header's
`+"`tick`"+` is the event's version, so repeats and reordering are absorbed by the sync's version
rule; the event id is built from type, id, tick and op, so a repeated feed event is the same
core feed event. Updates may leave out unchanged fields: they are completed from the last full
form of the entity, kept in PostgreSQL (table `+"`aria_feed_entities`"+`). An event that cannot be
read is still emitted, with `+"`source_error`"+` set, and the sync records it as failed.

Delivery is at least once. The last event id acknowledged downstream is stored
(`+"`aria_feed_cursors`"+`) and a restart resumes after it (`+"`Last-Event-ID`"+` and `+"`last_id`"+`);
a dropped connection resumes after the last event received. Metadata: `+"`vivace_key`"+` (the
entity id, the Kafka key downstream), `+"`aria_event_id`"+`.`).
		Field(fieldDSN()).
		Field(service.NewStringField("url").Description("The Data Feed's stream URL.")).
		Field(service.NewStringField("token_url").Description("The OAuth2 token endpoint.")).
		Field(service.NewStringField("client_id").Description("OAuth2 client id.")).
		Field(service.NewStringField("client_secret").Description("OAuth2 client secret.").Secret()).
		Field(service.NewStringField("client").Description("The Vivace client (tenant) the feed's entities belong to.")).
		Field(service.NewStringField("from").Description("Where a feed with no stored position starts: an ISO timestamp or a span such as `5hours`. Empty: the server's default.").Default("")).
		Field(service.NewDurationField("max_backoff").Description("Longest wait between reconnection attempts.").Default("30s").Advanced()).
		Field(service.NewDurationField("idle_timeout").Description("A connection that carries nothing, keep-alives included, for this long is dropped and replaced.").Default("2m").Advanced()).
		Field(service.NewAutoRetryNacksToggleField()).
		Example("Data Feed to core.feed", "", `
input:
  vivace_aria_feed:
    dsn: ${DATABASE_URL}
    url: ${VIVACE_ARIA_FEED_URL}
    token_url: ${VIVACE_ARIA_TOKEN_URL}
    client_id: ${VIVACE_ARIA_CLIENT_ID}
    client_secret: ${VIVACE_ARIA_CLIENT_SECRET}
    client: ${VIVACE_ARIA_CLIENT}
`)
}

func init() {
	service.MustRegisterInput("vivace_aria_feed", ariaFeedInputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.Input, error) {
			in := &ariaFeedInput{log: mgr.Logger(), skipped: mgr.Metrics().NewCounter("vivace_aria_feed_skipped")}
			var err error
			str := func(name string) string {
				if err != nil {
					return ""
				}
				var v string
				v, err = conf.FieldString(name)
				return v
			}
			in.dsn = str("dsn")
			in.url, in.tokenURL = str("url"), str("token_url")
			in.clientID, in.secret = str("client_id"), str("client_secret")
			in.client, in.from = str("client"), str("from")
			if err != nil {
				return nil, err
			}
			for name, v := range map[string]string{"url": in.url, "token_url": in.tokenURL, "client_id": in.clientID, "client": in.client} {
				if v == "" {
					return nil, errors.New(name + ": required")
				}
			}
			if in.backoff, err = conf.FieldDuration("max_backoff"); err != nil {
				return nil, err
			}
			if in.idle, err = conf.FieldDuration("idle_timeout"); err != nil {
				return nil, err
			}
			return service.AutoRetryNacksToggled(conf, in)
		})
}

type ariaFeedInput struct {
	storeConn
	log                                     *service.Logger
	skipped                                 *service.MetricCounter
	url, tokenURL, clientID, secret, client string
	from                                    string
	backoff, idle                           time.Duration

	msgs      chan ariaMsg
	errc      chan error
	stop      context.CancelFunc
	done      chan struct{}
	persisted chan struct{}
	cursor    *ackCursor
}

type ariaMsg struct {
	msg *service.Message
	seq int64
	id  string // the feed event id
}

// feedKey names a feed's stored position.
func (in *ariaFeedInput) feedKey() string { return in.client + " " + in.url }

func (in *ariaFeedInput) Connect(ctx context.Context) error {
	if in.done != nil {
		return nil
	}
	if err := in.connect(ctx); err != nil {
		return err
	}
	last, err := catalogstore.NewAriaFeedState(in.st).Cursor(ctx, in.feedKey())
	if err != nil {
		return err
	}
	in.cursor = &ackCursor{done: map[int64]string{}}
	mapper := &ariafeed.Mapper{Client: in.client, State: catalogstore.NewAriaFeedState(in.st)}
	stream := &ariafeed.Stream{URL: in.url, From: in.from, MaxBackoff: in.backoff, IdleTimeout: in.idle,
		HTTP:   &http.Client{},
		Tokens: &ariafeed.Tokens{URL: in.tokenURL, ClientID: in.clientID, ClientSecret: in.secret, HTTP: &http.Client{Timeout: 30 * time.Second}}}
	bg, cancel := context.WithCancel(context.Background())
	in.msgs, in.errc, in.stop, in.done = make(chan ariaMsg, 256), make(chan error, 1), cancel, make(chan struct{})
	in.persisted = make(chan struct{})
	go func() {
		defer close(in.persisted)
		in.persist(bg)
	}()
	go func() {
		defer close(in.done)
		var seq int64
		err := stream.Run(bg, last, func(ev ariafeed.SSE) error {
			seq++
			e, err := mapper.Map(bg, ariafeed.Message{ID: ev.ID, Kind: ev.Type, Data: ev.Data})
			if errors.Is(err, ariafeed.ErrSkipped) {
				in.skipped.Incr(1)
				in.cursor.ack(seq, ev.ID)
				return nil
			}
			if err != nil {
				return err
			}
			b, err := json.Marshal(e)
			if err != nil {
				return err
			}
			m := service.NewMessage(b)
			m.MetaSetMut("vivace_key", e.EntityID)
			m.MetaSetMut("aria_event_id", ev.ID)
			select {
			case in.msgs <- ariaMsg{msg: m, seq: seq, id: ev.ID}:
				return nil
			case <-bg.Done():
				return bg.Err()
			}
		})
		if err != nil && bg.Err() == nil {
			in.errc <- err
		}
	}()
	in.log.Infof("reading the data feed %s for client %s from %q", in.url, in.client, last)
	return nil
}

func (in *ariaFeedInput) Read(ctx context.Context) (*service.Message, service.AckFunc, error) {
	if in.msgs == nil {
		return nil, nil, service.ErrNotConnected
	}
	select {
	case m := <-in.msgs:
		return m.msg, func(ctx context.Context, err error) error {
			if err == nil {
				in.cursor.ack(m.seq, m.id)
			}
			return nil
		}, nil
	case err := <-in.errc:
		return nil, nil, err
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

// persist stores the acknowledged position every second and on close.
func (in *ariaFeedInput) persist(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var saved string
	save := func(ctx context.Context) {
		if id := in.cursor.position(); id != "" && id != saved {
			if err := catalogstore.NewAriaFeedState(in.st).SaveCursor(ctx, in.feedKey(), id); err != nil {
				in.log.Errorf("store the data feed position: %v", err)
				return
			}
			saved = id
		}
	}
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			save(sctx)
			cancel()
			return
		case <-t.C:
			save(ctx)
		}
	}
}

func (in *ariaFeedInput) Close(ctx context.Context) error {
	if in.stop != nil {
		in.stop()
		<-in.done
		<-in.persisted // the last position is saved on the way out
		in.stop, in.done, in.msgs = nil, nil, nil
	}
	in.close()
	return nil
}

// ackCursor tracks which events have been acknowledged and gives the id
// of the last one before which every event is acknowledged: where a
// restart may resume without losing anything.
type ackCursor struct {
	mu   sync.Mutex
	next int64            // the highest sequence up to which all are acknowledged
	done map[int64]string // acknowledged ahead of next: sequence → feed event id
	last string
}

func (c *ackCursor) ack(seq int64, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done[seq] = id
	for {
		id, ok := c.done[c.next+1]
		if !ok {
			return
		}
		delete(c.done, c.next+1)
		c.next++
		c.last = id
	}
}

func (c *ackCursor) position() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}
