package tmf635

import (
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Filter is what GET /usage asks for.
type Filter struct {
	Statuses   []Status // any of them; empty: all
	UsageTypes []string
	From, To   *time.Time // usageDate.gte, usageDate.lt
	Accounts   []string   // relatedParty.id
	Offset     int
	Limit      int
	Fields     []string // fields=; empty: all
}

// Default and largest page.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// ParseFilter reads the query of GET /usage: offset, limit, fields, and
// the attribute filters status, usageType, usageDate.gte, usageDate.lt
// and relatedParty.id (a list with commas, or the parameter repeated,
// means any of them). Anything else in the query is refused, so that a
// misspelt filter never quietly lists everything.
func ParseFilter(q url.Values) (Filter, error) {
	f := Filter{Limit: DefaultLimit}
	list := func(key string) []string {
		var out []string
		for _, v := range q[key] {
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					out = append(out, s)
				}
			}
		}
		return out
	}
	for key := range q {
		switch key {
		case "offset", "limit", "fields", "status", "usageType", "usageDate.gte", "usageDate.lt", "relatedParty.id", "client":
		default:
			return f, badRequest("query parameter %q: filter by status, usageType, usageDate.gte, usageDate.lt or relatedParty.id, page with offset and limit, choose with fields", key)
		}
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return f, badRequest("offset: %q is not a number of 0 or more", v)
		}
		f.Offset = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			return f, badRequest("limit: %q is not a number from 1 to %d", v, MaxLimit)
		}
		f.Limit = n
	}
	for _, s := range list("status") {
		if !slices.Contains(Statuses, Status(s)) {
			return f, badRequest("status: %q; Vivace's usages are received, rejected, recycled, rated or billed", s)
		}
		f.Statuses = append(f.Statuses, Status(s))
	}
	f.UsageTypes = list("usageType")
	f.Accounts = list("relatedParty.id")
	for key, dst := range map[string]**time.Time{"usageDate.gte": &f.From, "usageDate.lt": &f.To} {
		if v := q.Get(key); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return f, badRequest("%s: %q is not a date-time (RFC 3339)", key, v)
			}
			*dst = &t
		}
	}
	fields, err := ParseFields(q.Get("fields"))
	if err != nil {
		return f, err
	}
	f.Fields = fields
	return f, nil
}

// usageFields are the Usage's top-level properties.
var usageFields = []string{"id", "href", "description", "usageDate", "usageType", "status", "usageSpecification",
	"usageCharacteristic", "relatedParty", "ratedProductUsage", "@type"}

// ParseFields reads fields=: a comma-separated list of Usage properties.
func ParseFields(v string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	var out []string
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !slices.Contains(usageFields, f) {
			return nil, badRequest("fields: %q is not a property of Usage (%s)", f, strings.Join(usageFields, ", "))
		}
		out = append(out, f)
	}
	return out, nil
}

// Select keeps the fields asked for, and always id and href.
func Select(u Usage, fields []string) any {
	if len(fields) == 0 {
		return u
	}
	b, _ := json.Marshal(u)
	var all map[string]json.RawMessage
	_ = json.Unmarshal(b, &all)
	out := make(map[string]json.RawMessage, len(fields)+2)
	for k, v := range all {
		if k == "id" || k == "href" || slices.Contains(fields, k) {
			out[k] = v
		}
	}
	return out
}

// Matches reports whether a usage is one the filter lists (the list
// query does this in SQL; this is the same rule for a single usage).
func (f *Filter) Matches(u *Usage) bool {
	if len(f.Statuses) > 0 && !slices.Contains(f.Statuses, u.Status) {
		return false
	}
	if len(f.UsageTypes) > 0 && !slices.Contains(f.UsageTypes, u.UsageType) {
		return false
	}
	if f.From != nil || f.To != nil {
		t, err := time.Parse(time.RFC3339Nano, u.UsageDate)
		if err != nil || f.From != nil && t.Before(*f.From) || f.To != nil && !t.Before(*f.To) {
			return false
		}
	}
	if len(f.Accounts) > 0 {
		found := false
		for _, p := range u.RelatedParty {
			found = found || slices.Contains(f.Accounts, p.ID)
		}
		if !found {
			return false
		}
	}
	return true
}

// Event types.
const (
	CreateEvent      = "UsageCreateEvent"
	StateChangeEvent = "UsageStateChangeEvent"
)

// HubQuery is what a subscription wants: event types and a usage filter.
type HubQuery struct {
	EventTypes []string
	Filter     Filter
}

// ParseHubQuery reads a subscription's query: eventType= (one or more of
// UsageCreateEvent, UsageStateChangeEvent) and the attribute filters of
// GET /usage, with or without the "usage." prefix the event's shape
// gives them (usage.status=rated).
func ParseHubQuery(query string) (HubQuery, error) {
	var h HubQuery
	q, err := url.ParseQuery(query)
	if err != nil {
		return h, badRequest("query: %q is not a query string (eventType=UsageStateChangeEvent&status=rated)", query)
	}
	rest := url.Values{}
	for k, vs := range q {
		k = strings.TrimPrefix(k, "usage.")
		if k == "eventType" {
			for _, v := range vs {
				for _, t := range strings.Split(v, ",") {
					if t != CreateEvent && t != StateChangeEvent {
						return h, badRequest("query: eventType %q; this hub sends %s and %s", t, CreateEvent, StateChangeEvent)
					}
					h.EventTypes = append(h.EventTypes, t)
				}
			}
			continue
		}
		switch k {
		case "status", "usageType", "usageDate.gte", "usageDate.lt", "relatedParty.id":
			rest[k] = vs
		default:
			return h, badRequest("query: %q; a subscription filters by eventType, status, usageType, usageDate.gte, usageDate.lt or relatedParty.id", k)
		}
	}
	f, err := ParseFilter(rest)
	if err != nil {
		return h, err
	}
	h.Filter = f
	return h, nil
}

// Wants reports whether the subscription gets an event of this type for
// this usage.
func (h *HubQuery) Wants(eventType string, u *Usage) bool {
	if len(h.EventTypes) > 0 && !slices.Contains(h.EventTypes, eventType) {
		return false
	}
	return h.Filter.Matches(u)
}

// Event is a hub notification.
type Event struct {
	EventID     string `json:"eventId"`
	EventTime   string `json:"eventTime"`
	EventType   string `json:"eventType"`
	TimeOcurred string `json:"timeOcurred"`
	Domain      string `json:"domain"`
	Title       string `json:"title"`
	Event       struct {
		Usage Usage `json:"usage"`
	} `json:"event"`
}

// NewEvent is the notification of a change of u; the usage's status is
// the one it changed to.
func NewEvent(id, eventType string, u Usage, status Status, occurred, now time.Time) Event {
	e := Event{EventID: id, EventTime: now.UTC().Format(time.RFC3339Nano), EventType: eventType,
		TimeOcurred: occurred.UTC().Format(time.RFC3339Nano), Domain: "usageManagement"}
	u.Status = status
	if status != Rated && status != Billed {
		u.RatedProductUsage = nil
	} else if len(u.RatedProductUsage) > 0 {
		u.RatedProductUsage[0].IsBilled = status == Billed
	}
	e.Event.Usage = u
	e.Title = map[string]string{CreateEvent: "usage created", StateChangeEvent: "usage state changed"}[eventType]
	return e
}

// ListenerPath is where a subscriber's listener takes an event type:
// the callback, then /listener/usageCreateEvent or
// /listener/usageStateChangeEvent, as the standard's listener
// operations are named.
func ListenerPath(eventType string) string {
	return "/listener/" + strings.ToLower(eventType[:1]) + eventType[1:]
}

// Backoff is how long to wait before attempt n+1 of a callback that
// failed n times: 1 s doubling to at most 5 minutes, with up to a fifth
// more at random so that many callbacks to one listener spread out.
func Backoff(failures int) time.Duration {
	d := time.Second
	for i := 1; i < failures && d < 5*time.Minute; i++ {
		d *= 2
	}
	d = min(d, 5*time.Minute)
	return d + time.Duration(rand.Int64N(int64(d/5)+1))
}
