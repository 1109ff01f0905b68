// Package loadgen makes realistic catalogs and usage files for tests,
// demos and benchmarks: deterministic for a seed, streamed so that a file
// of any size takes no memory.
package loadgen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/apd/v3"

	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/feed"
	"vivace.dev/vivace/internal/money"
)

// UsageTypes are the usage types a generated catalog defines, with the
// per-unit price its plans charge (plan p multiplies it by 1 + p/10).
var UsageTypes = []struct {
	Code, Unit, Price string
}{
	{"VOICE", "minute", "0.05"},
	{"DATA", "GB", "2.50"},
	{"SMS", "message", "0.01"},
	{"API", "call", "0.0004"},
}

// Models are the pricing models a generated catalog uses, in the order
// plans cycle through them.
var Models = []string{"per_unit", "graduated", "volume", "stairstep", "package"}

// CatalogOptions size a generated catalog.
type CatalogOptions struct {
	Client   string
	Accounts int
	Plans    int
	// Currencies of the accounts, which take them in turn; every plan has
	// rates in each. Default USD.
	Currencies []string
	// Models the plans' rate schedules use; default all of Models. Plan p
	// prices usage type u with Models[(p+u) % len(Models)], so two plans
	// are enough for every model to appear.
	Models []string
	// NoDiscounts leaves discounts out.
	NoDiscounts bool
	From        time.Time // effective_from of rates and subscriptions; default 2020-01-01
	// TroubleEvery, when positive, follows every n-th event with one that
	// the sync must cope with, in turn: the same event again, an older
	// version, a newer version, a line that is not JSON, an unknown op,
	// and data of the wrong type. Tally, when not nil, receives what the
	// sync should make of the whole file.
	TroubleEvery int
	Tally        *Tally
	// Extras adds fields Vivace does not use everywhere, as other systems
	// send them: envelope fields (a source, a trace id), names and
	// descriptions, unit prices on stairstep tiers, and random fields with
	// random values at every level of the data. Such a catalog must apply
	// exactly as the one without them. Seed picks the random ones.
	Extras bool
	Seed   uint64
}

// Tally counts the events of a generated file by the outcome the sync
// should give them. A repeated event counts as ignored, as `vivace feed
// publish --wait` reports it.
type Tally struct {
	Events  int `json:"events"`
	Applied int `json:"applied"`
	Ignored int `json:"ignored"`
	Failed  int `json:"failed"`
}

// AccountID is the id of generated account i.
func AccountID(i int) string { return fmt.Sprintf("ACC%07d", i) }

// Tier bounds of the tiered models, in units of cumulative monthly usage.
// A generated usage file gives an account a few thousand units per record,
// so a busy month crosses every bound.
const (
	tier1 = "20000"
	tier2 = "200000"
)

// Catalog writes feed events (JSON Lines) for usage types, plans,
// accounts with one subscription each and, unless NoDiscounts, discounts
// of every kind: each plan gives 50,000 free DATA units a month, odd plans
// take 0.001 per VOICE unit off, and every third account has 12.5% off all
// usage.
func Catalog(w io.Writer, o CatalogOptions) error {
	if o.Accounts < 1 || o.Plans < 1 {
		return fmt.Errorf("accounts and plans must be at least 1")
	}
	if len(o.Currencies) == 0 {
		o.Currencies = []string{"USD"}
	}
	for _, c := range o.Currencies {
		if !money.Known(c) {
			return fmt.Errorf("currency %q is not an ISO 4217 code", c)
		}
	}
	if len(o.Models) == 0 {
		o.Models = Models
	}
	for _, m := range o.Models {
		if !catalog.Model(m).Valid() {
			return fmt.Errorf("model %q is not one of %s", m, strings.Join(Models, ", "))
		}
	}
	if o.From.IsZero() {
		o.From = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	var tally Tally
	if o.Tally == nil {
		o.Tally = &tally
	}
	*o.Tally = Tally{}
	n, trouble := 0, 0
	var x *extras
	if o.Extras {
		x = &extras{rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x5851f42d4c957f2d))}
	}
	emit := func(entity, id string, data any) error {
		n++
		b, err := json.Marshal(data)
		if err != nil {
			return err
		}
		e := feed.Event{
			EventID: fmt.Sprintf("%s-gen-%08d", o.Client, n), Client: o.Client, Entity: entity, EntityID: id,
			Version: 1, OccurredAt: o.From, Op: feed.OpUpsert, Data: b,
		}
		if x != nil {
			if e.Data, err = x.data(entity, b); err != nil {
				return err
			}
			e.Extra = x.envelope(n)
		}
		o.Tally.Events++
		o.Tally.Applied++
		if err := enc.Encode(e); err != nil {
			return err
		}
		if o.TroubleEvery <= 0 || n%o.TroubleEvery != 0 {
			return nil
		}
		trouble++
		return writeTrouble(bw, enc, e, trouble, o.Tally)
	}
	from := o.From.Format(time.RFC3339)
	for _, u := range UsageTypes {
		if err := emit(feed.EntityUsageType, u.Code, map[string]string{"unit": u.Unit, "description": u.Code + " usage"}); err != nil {
			return err
		}
	}
	for p := 0; p < o.Plans; p++ {
		var rates []map[string]any
		for ui, u := range UsageTypes {
			price := scale(u.Price, p)
			for _, cur := range o.Currencies {
				r := map[string]any{"usage_type": u.Code, "currency": cur, "effective_from": from}
				addModel(r, o.Models[(p+ui)%len(o.Models)], price)
				rates = append(rates, r)
			}
		}
		if err := emit(feed.EntityPlan, planID(p), map[string]any{"rates": rates}); err != nil {
			return err
		}
		if o.NoDiscounts {
			continue
		}
		if err := emit(feed.EntityDiscount, fmt.Sprintf("FREEDATA%03d", p), map[string]any{"plan_id": planID(p),
			"usage_types": []string{"DATA"}, "kind": "free_units", "value": "50000", "priority": 1,
			"effective_from": from}); err != nil {
			return err
		}
		if p%2 == 1 {
			if err := emit(feed.EntityDiscount, fmt.Sprintf("VOICEOFF%03d", p), map[string]any{"plan_id": planID(p),
				"usage_types": []string{"VOICE"}, "kind": "amount_per_unit", "value": "0.001", "priority": 1,
				"effective_from": from}); err != nil {
				return err
			}
		}
	}
	for a := 0; a < o.Accounts; a++ {
		if err := emit(feed.EntityAccount, AccountID(a), map[string]string{"currency": o.Currencies[a%len(o.Currencies)],
			"status": "active", "name": "Account " + strconv.Itoa(a)}); err != nil {
			return err
		}
		if err := emit(feed.EntitySubscription, "SUB"+AccountID(a)[3:], map[string]string{"account_id": AccountID(a),
			"plan_id": planID(a % o.Plans), "effective_from": from}); err != nil {
			return err
		}
		if !o.NoDiscounts && a%3 == 2 {
			if err := emit(feed.EntityDiscount, "PCT"+AccountID(a)[3:], map[string]any{"account_id": AccountID(a),
				"kind": "percent", "value": "12.5", "priority": 2, "effective_from": from}); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

// writeTrouble writes the k-th troublesome event after e, in turn: e
// again, an older version of its entity, a newer one, a line that is not
// JSON, an unknown op, and data of the wrong type.
func writeTrouble(w *bufio.Writer, enc *json.Encoder, e feed.Event, k int, t *Tally) error {
	t.Events++
	id := fmt.Sprintf("%s-trouble-%08d", e.Client, k)
	switch k % 6 {
	case 0: // redelivered as is
		t.Ignored++
		return enc.Encode(e)
	case 1: // a version not newer than the stored one
		t.Ignored++
		e.EventID = id
		return enc.Encode(e)
	case 2: // a newer version
		t.Applied++
		e.EventID, e.Version = id, 2
		return enc.Encode(e)
	case 3: // cut short
		t.Failed++
		_, err := fmt.Fprintf(w, "{\"event_id\":%q,\"client\":%q,\"entity\":\n", id, e.Client)
		return err
	case 4: // an op the sync does not know
		t.Failed++
		e.EventID, e.Version, e.Op = id, 3, "merge"
		return enc.Encode(e)
	default: // data of the wrong type
		t.Failed++
		e.EventID, e.Version, e.Data = id, 3, json.RawMessage(`["not","an","object"]`)
		return enc.Encode(e)
	}
}

// addModel sets the model's price fields on rate schedule r, around a
// per-unit price: tiers get cheaper per unit as usage grows, and carry
// flat fees where the model allows.
func addModel(r map[string]any, model, price string) {
	r["model"] = model
	tier := func(upTo any, unit, fee string) map[string]any {
		t := map[string]any{"up_to": upTo}
		if unit != "" {
			t["unit_price"] = unit
		}
		if fee != "" {
			t["flat_fee"] = fee
		}
		return t
	}
	switch model {
	case "per_unit":
		r["unit_price"] = price
	case "graduated":
		r["tiers"] = []map[string]any{tier(tier1, price, ""), tier(tier2, mul(price, "0.8"), "2.50"), tier(nil, mul(price, "0.5"), "")}
	case "volume":
		r["tiers"] = []map[string]any{tier(tier1, price, "1.00"), tier(tier2, mul(price, "0.75"), ""), tier(nil, mul(price, "0.6"), "")}
	case "stairstep":
		r["tiers"] = []map[string]any{tier(tier1, "", "5.00"), tier(tier2, "", "40.00"), tier(nil, "", "150.00")}
	case "package":
		r["package_size"] = "100"
		r["unit_price"] = mul(price, "90")
	}
}

func planID(p int) string { return fmt.Sprintf("PLAN%03d", p) }

// scale multiplies a price by 1 + p/10, exactly.
func scale(price string, p int) string {
	return mul(price, apd.New(int64(10+p), -1).Text('f'))
}

// mul multiplies two decimals exactly.
func mul(a, b string) string {
	x, _, _ := apd.NewFromString(a)
	y, _, _ := apd.NewFromString(b)
	var r apd.Decimal
	_, _ = apd.BaseContext.WithPrecision(34).Mul(&r, x, y)
	r.Reduce(&r)
	return r.Text('f')
}

// UsageOptions shape a generated usage file.
type UsageOptions struct {
	Client   string
	Records  int
	Accounts int
	Seed     uint64
	// Start is the earliest usage_time; records spread over the next
	// Spread. Default: the last 24 hours before now.
	Start  time.Time
	Spread time.Duration
	// BadEvery, when > 0, makes every n-th record invalid (alternating a
	// bad quantity and a bad timestamp), to exercise the exception path.
	BadEvery int
	// UnknownEvery, when > 0, gives every n-th record an account the
	// catalog does not have (the rate stage makes it an UNKNOWN_ACCOUNT
	// exception); a record BadEvery picks stays bad instead.
	UnknownEvery int
	// HotAccounts and HotPercent skew the file as real ones are: that
	// percentage of the records goes to the first HotAccounts accounts,
	// the rest spread over all of them. Zero: no skew.
	HotAccounts int
	HotPercent  int
}

// UnknownAccountID is the account of a record UnknownEvery picks: one
// that Catalog never writes.
func UnknownAccountID(i int) string { return fmt.Sprintf("NOACC%07d", i) }

// Usage writes a CSV usage file with a header row.
func Usage(w io.Writer, o UsageOptions) error {
	if o.Records < 0 || o.Accounts < 1 {
		return fmt.Errorf("records must be ≥ 0 and accounts ≥ 1")
	}
	if o.HotPercent < 0 || o.HotPercent > 100 || o.HotAccounts < 0 || (o.HotPercent > 0) != (o.HotAccounts > 0) {
		return fmt.Errorf("hot percent must be 0 to 100, and hot accounts and hot percent both set or both zero")
	}
	hot := min(o.HotAccounts, o.Accounts)
	if o.Spread <= 0 {
		o.Spread = 24 * time.Hour
	}
	if o.Start.IsZero() {
		o.Start = time.Now().UTC().Add(-o.Spread).Truncate(time.Second)
	}
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := bw.WriteString("record_id,account_id,usage_type,quantity,usage_time\n"); err != nil {
		return err
	}
	step := o.Spread / time.Duration(max(o.Records, 1))
	var line []byte
	for i := 0; i < o.Records; i++ {
		line = line[:0]
		line = append(line, o.Client...)
		line = append(line, '-')
		line = strconv.AppendUint(line, o.Seed, 36)
		line = append(line, '-')
		line = strconv.AppendInt(line, int64(i), 10)
		line = append(line, ',')
		acct := rng.IntN(o.Accounts)
		if hot > 0 && rng.IntN(100) < o.HotPercent {
			acct = rng.IntN(hot)
		}
		bad := o.BadEvery > 0 && i%o.BadEvery == o.BadEvery-1
		if !bad && o.UnknownEvery > 0 && i%o.UnknownEvery == o.UnknownEvery-1 {
			line = append(line, UnknownAccountID(acct)...)
		} else {
			line = append(line, AccountID(acct)...)
		}
		line = append(line, ',')
		line = append(line, UsageTypes[rng.IntN(len(UsageTypes))].Code...)
		line = append(line, ',')
		if bad && (i/o.BadEvery)%2 == 0 {
			line = append(line, "n/a"...)
		} else {
			line = strconv.AppendInt(line, int64(rng.IntN(10000)), 10)
			line = append(line, '.')
			line = strconv.AppendInt(line, int64(10+rng.IntN(90)), 10)
		}
		line = append(line, ',')
		if bad && (i/o.BadEvery)%2 == 1 {
			line = append(line, "not-a-time"...)
		} else {
			line = o.Start.Add(time.Duration(i)*step).AppendFormat(line, time.RFC3339)
		}
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// extras adds to generated events the fields other systems send and
// Vivace does not use.
type extras struct{ rng *rand.Rand }

// envelope returns the extra envelope fields of the n-th event.
func (x *extras) envelope(n int) map[string]json.RawMessage {
	m := map[string]json.RawMessage{
		"source":   json.RawMessage(`"core-billing"`),
		"trace_id": json.RawMessage(fmt.Sprintf(`"%016x"`, x.rng.Uint64())),
	}
	x.random(m, n)
	return m
}

// data returns an entity's data with extra fields at every level.
func (x *extras) data(entity string, b []byte) (json.RawMessage, error) {
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	x.object(d)
	switch entity {
	case feed.EntityPlan:
		d["name"], d["description"] = "Plan "+strconv.Itoa(x.rng.IntN(1000)), "a generated plan"
		for _, r := range d["rates"].([]any) {
			rate := r.(map[string]any)
			x.object(rate)
			rate["description"] = "rate for " + rate["usage_type"].(string)
			tiers, _ := rate["tiers"].([]any)
			for _, t := range tiers {
				tier := t.(map[string]any)
				x.object(tier)
				tier["from_unit"] = x.rng.IntN(100)
				if rate["model"] == "stairstep" {
					// The core system's own tiers carry a rate next to the fee.
					tier["unit_price"] = strconv.Itoa(1+x.rng.IntN(99)) + ".25"
				}
			}
		}
	case feed.EntityUsageType:
		d["name"] = "usage type " + strconv.Itoa(x.rng.IntN(1000))
	case feed.EntityDiscount, feed.EntitySubscription:
		d["description"] = "generated"
	}
	return json.Marshal(d)
}

// object adds one to three random fields with random values to m.
func (x *extras) object(m map[string]any) {
	for range 1 + x.rng.IntN(3) {
		m[fmt.Sprintf("ext_%s_%d", extraWords[x.rng.IntN(len(extraWords))], x.rng.IntN(1000))] = x.value(2)
	}
}

// random adds random fields to an envelope.
func (x *extras) random(m map[string]json.RawMessage, n int) {
	for range x.rng.IntN(3) {
		b, _ := json.Marshal(x.value(2))
		m[fmt.Sprintf("ext_%s_%d", extraWords[x.rng.IntN(len(extraWords))], n)] = b
	}
}

var extraWords = []string{"legacy_id", "region", "colour", "audit", "tags", "revision", "origin", "flags"}

// value is a random JSON value, nesting at most depth deep.
func (x *extras) value(depth int) any {
	k := x.rng.IntN(7)
	if depth == 0 {
		k %= 5
	}
	switch k {
	case 0:
		return "v" + strconv.Itoa(x.rng.IntN(1e6))
	case 1:
		return x.rng.IntN(1e6)
	case 2:
		return float64(x.rng.IntN(1e4)) / 8
	case 3:
		return x.rng.IntN(2) == 0
	case 4:
		return nil
	case 5:
		return []any{x.value(depth - 1), x.value(depth - 1)}
	default:
		return map[string]any{"value": x.value(depth - 1), "unit_price": "n/a"}
	}
}
