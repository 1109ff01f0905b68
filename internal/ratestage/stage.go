// Package ratestage is the rate stage: it takes a batch of usage records
// in normal form and, in one database transaction, checks each for
// duplicates, rates it against its client's catalog, and stores the MURs,
// the exceptions and the advanced cumulative counters. The caller commits
// the batch's Kafka offsets only after Rate returns, which makes rating
// exactly once: a replayed batch finds its MURs and changes nothing.
package ratestage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/cockroachdb/apd/v3"

	"vivace.dev/vivace/internal/catalog"
	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/money"
	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/rating"
	"vivace.dev/vivace/internal/usage"
)

// StageName is the stage recorded on the exceptions this stage makes.
const StageName = "rate"

// Item is one record of a batch, with the message body it came in, kept
// on an exception so that a person sees the record as it arrived.
type Item struct {
	Record usage.Record
	Body   json.RawMessage
}

// Summary counts what a batch became.
type Summary struct {
	MURs       int // new MURs
	Exceptions int // new exceptions (DUPLICATE_RECORD and catalog codes)
	Replayed   int // records already rated from the same source: nothing changed
	// ByCode counts the new exceptions by code.
	ByCode map[codes.Code]int
}

// Stage rates batches. It is safe for concurrent use; batches that share
// accounts queue on the counters' row locks.
type Stage struct {
	Store    Store
	Catalogs *Catalogs
	Logger   *slog.Logger
	// Now stamps rated_at; nil means time.Now.
	Now func() time.Time

	// memory holds the counters and allowances committed batches left,
	// checked against the database when a batch writes them back.
	memory ledgerMemory
	// seen holds the files whose batches met a stored record id.
	seen storedFiles
}

// New returns a stage that rates through st against the catalogs in cat.
func New(st Store, cat CatalogSource, log *slog.Logger) *Stage {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Stage{Store: st, Catalogs: &Catalogs{Store: cat, Logger: log}, Logger: log}
}

// Rate rates a batch in one transaction. Records are rated in batch
// order, so a batch read from one partition keeps per-account order. A
// record-level failure becomes an exception; any other error fails the
// whole batch, which changes nothing and can be retried.
func (s *Stage) Rate(ctx context.Context, items []Item) (Summary, error) {
	if len(items) == 0 {
		return Summary{}, nil
	}
	// Snapshots are taken before the transaction: a catalog change that
	// committed before this point is seen.
	snaps := map[string]*catalog.Snapshot{}
	for i := range items {
		c := items[i].Record.Client
		if _, ok := snaps[c]; ok {
			continue
		}
		snap, err := s.Catalogs.Get(ctx, c)
		if err != nil {
			return Summary{}, err
		}
		snaps[c] = snap
	}
	var sum Summary
	var led ledgerState
	// Most batches hold no record id that already has a MUR, so their
	// record ids are not looked up first: the MURs' unique key refuses
	// the COPY of a batch that does, and the batch is rated again from
	// the start with the look-up (ErrRecordStored). Batches of a file
	// that met one (a file sent again, a replay) look up first.
	lookup := s.seen.any(items)
	err := s.Store.Rate(ctx, func(tx Tx) error {
		var err error
		sum, led, err = s.rateTx(ctx, tx, items, snaps, lookup)
		if errors.Is(err, ErrRecordStored) && !lookup {
			lookup = true
			s.seen.add(items)
			s.Logger.Debug("a record id of the batch already has a MUR: rating the batch again with the look-up",
				"records", len(items), "file_id", items[0].Record.FileID, "line", items[0].Record.Line)
		}
		return err
	})
	if err == nil {
		// Only what committed is remembered.
		s.memory.remember(led.counters, led.allowances)
	}
	return sum, err
}

// ledgerState is what a batch's transaction leaves in the counters and
// allowances it read: the values it loaded, then the ones it wrote.
type ledgerState struct {
	counters   map[CounterKey]string
	allowances map[AllowanceKey]string
}

// plan is what the transaction works out for one record before rating.
type plan struct {
	skip bool // replay of a rated record
	dup  *codes.Error
	qty  apd.Decimal
}

// rateTx rates items in tx. With lookup false it does not look for
// stored MURs of the batch's record ids; InsertMURs then fails with
// ErrRecordStored if there is one.
func (s *Stage) rateTx(ctx context.Context, tx Tx, items []Item, snaps map[string]*catalog.Snapshot, lookup bool) (Summary, ledgerState, error) {
	var sum Summary
	var led ledgerState
	plans := make([]plan, len(items))

	// Duplicates: against stored MURs, and within the batch.
	keys := make([]RecordKey, 0, len(items))
	for i := range items {
		r := &items[i].Record
		keys = append(keys, RecordKey{Client: r.Client, RecordID: r.RecordID})
	}
	var existing map[RecordKey]SourceKey
	if lookup {
		var err error
		existing, err = tx.ExistingMURs(ctx, keys)
		if err != nil {
			return sum, led, fmt.Errorf("look up rated records: %w", err)
		}
	}
	inBatch := make(map[RecordKey]SourceKey, len(items))
	for i := range items {
		r := &items[i].Record
		src := SourceKey{Client: r.Client, FileID: r.FileID, Line: r.Line, Part: r.Part}
		k := keys[i]
		prev, ok := existing[k]
		if !ok {
			prev, ok = inBatch[k]
		}
		switch {
		case ok && prev == src:
			plans[i].skip = true
			sum.Replayed++
			continue
		case ok:
			plans[i].dup = codes.Errorf(codes.DuplicateRecord, usage.FieldRecordID,
				"record_id %q was already rated from file %s line %d", r.RecordID, prev.FileID, prev.Line)
			continue
		}
		inBatch[k] = src
		if err := money.ParseInto(&plans[i].qty, r.Quantity); err != nil {
			// The mediate stage checked the quantity; a record that
			// skipped it still gets a coded exception.
			plans[i].dup = codes.Errorf(codes.BadQuantity, usage.FieldQuantity, "%s", err.Error())
		}
	}

	// Lock and load the counters and allowances the batch can touch, in
	// key order.
	// The maps and lists below are made at their batch's size: growing
	// them record by record rehashed every map several times a batch.
	ledgers := map[string]*rating.MemLedger{}
	counterKeys := make([]CounterKey, 0, len(items))
	var allowanceKeys []AllowanceKey
	seenC := make(map[CounterKey]bool, len(items))
	seenA := map[AllowanceKey]bool{}
	var buf []*catalog.Discount
	for i := range items {
		if plans[i].skip || plans[i].dup != nil {
			continue
		}
		r := &items[i].Record
		month := rating.MonthOf(r.UsageTime)
		ck := CounterKey{Client: r.Client, AccountID: r.AccountID, UsageType: r.UsageType, Month: month}
		if !seenC[ck] {
			seenC[ck] = true
			counterKeys = append(counterKeys, ck)
		}
		snap := snaps[r.Client]
		if sub := snap.SubscriptionAt(r.AccountID, r.UsageTime); sub != nil {
			buf = snap.AppendDiscountsAt(buf[:0], r.AccountID, sub.PlanID, r.UsageType, r.UsageTime)
			for _, d := range buf {
				if d.Kind != catalog.FreeUnits {
					continue
				}
				ak := AllowanceKey{Client: r.Client, AccountID: r.AccountID, DiscountID: d.ID, Month: month}
				if !seenA[ak] {
					seenA[ak] = true
					allowanceKeys = append(allowanceKeys, ak)
				}
			}
		}
	}
	// Those the stage remembers from its own committed batches are not
	// read; their write-back checks them (ledgerMemory).
	counters := make(map[CounterKey]string, len(counterKeys))
	allowances := make(map[AllowanceKey]string, len(allowanceKeys))
	counterKeys = s.memory.recallCounters(counterKeys, counters)
	allowanceKeys = s.memory.recallAllowances(allowanceKeys, allowances)
	assumedC, assumedA := maps.Clone(counters), maps.Clone(allowances)
	loadedC, err := tx.LoadCounters(ctx, counterKeys)
	if err != nil {
		return sum, led, fmt.Errorf("load counters: %w", err)
	}
	loadedA, err := tx.LoadAllowances(ctx, allowanceKeys)
	if err != nil {
		return sum, led, fmt.Errorf("load allowances: %w", err)
	}
	maps.Copy(counters, loadedC)
	maps.Copy(allowances, loadedA)
	ledger := func(client string) *rating.MemLedger {
		l := ledgers[client]
		if l == nil {
			l = rating.NewMemLedgerSized(len(counters), len(allowances))
			ledgers[client] = l
		}
		return l
	}
	var d apd.Decimal
	for k, v := range counters {
		if err := money.ParseInto(&d, v); err != nil {
			return sum, led, fmt.Errorf("counter %v: %w", k, err)
		}
		ledger(k.Client).LoadUsage(rating.UsageKey{AccountID: k.AccountID, UsageType: k.UsageType, Month: k.Month}, &d)
	}
	for k, v := range allowances {
		if err := money.ParseInto(&d, v); err != nil {
			return sum, led, fmt.Errorf("allowance %v: %w", k, err)
		}
		ledger(k.Client).LoadAllowance(rating.AllowanceKey{AccountID: k.AccountID, DiscountID: k.DiscountID, Month: k.Month}, &d)
	}

	// Rate in order.
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ratedAt := now().UTC()
	var (
		eng rating.Engine
		res rating.Result
		ms  = make([]murs.MUR, 0, len(items))
		exs []exceptions.Exception
		// The batch's rate details share one buffer.
		details = make([]byte, 0, 400*len(items))
	)
	for i := range items {
		p := &plans[i]
		if p.skip {
			continue
		}
		it := &items[i]
		r := &it.Record
		if p.dup != nil {
			exs = append(exs, exception(it, p.dup))
			continue
		}
		in := rating.Input{AccountID: r.AccountID, UsageType: r.UsageType, UsageTime: r.UsageTime}
		in.Quantity.Set(&p.qty)
		err := eng.Rate(snaps[r.Client], ledger(r.Client), &in, &res)
		if ce, ok := codes.As(err); ok {
			exs = append(exs, exception(it, ce))
			continue
		}
		if err != nil {
			return sum, led, fmt.Errorf("rate record %q (file %s line %d): %w", r.RecordID, r.FileID, r.Line, err)
		}
		start := len(details)
		details = res.AppendDetailJSON(details)
		ms = append(ms, murs.MUR{
			MURID:          ids.New(),
			Client:         r.Client,
			RecordID:       r.RecordID,
			FileID:         r.FileID,
			Line:           r.Line,
			Part:           r.Part,
			Parts:          r.Parts,
			AccountID:      r.AccountID,
			UsageType:      r.UsageType,
			Quantity:       r.Quantity,
			UsageTime:      r.UsageTime,
			Currency:       res.Currency,
			GrossAmount:    res.Gross.Text('f'),
			DiscountAmount: res.Discount.Text('f'),
			NetAmount:      res.Net.Text('f'),
			RateDetail:     details[start:len(details):len(details)],
			Qualifiers:     r.Qualifiers,
			Attributes:     r.Attributes,
			RatedAt:        ratedAt,
		})
	}

	// Write back what rating changed.
	newCounters := make(map[CounterKey]string, len(counters))
	newAllowances := make(map[AllowanceKey]string, len(allowances))
	for client, l := range ledgers {
		for _, k := range l.TouchedUsage() {
			v, _ := l.Usage(k)
			newCounters[CounterKey{Client: client, AccountID: k.AccountID, UsageType: k.UsageType, Month: k.Month}] = v.Text('f')
		}
		for _, k := range l.TouchedAllowances() {
			v, _ := l.AllowanceUsed(k)
			newAllowances[AllowanceKey{Client: client, AccountID: k.AccountID, DiscountID: k.DiscountID, Month: k.Month}] = v.Text('f')
		}
	}
	// A remembered value the batch read but did not advance is written
	// back unchanged, so that it is checked too.
	addMissing(newCounters, assumedC)
	addMissing(newAllowances, assumedA)
	err = tx.SaveCountersChecked(ctx, newCounters, assumedC)
	if err == nil {
		err = tx.SaveAllowancesChecked(ctx, newAllowances, assumedA)
	}
	if errors.Is(err, ErrStaleLedger) {
		s.memory.forget(assumedC, assumedA)
		return sum, led, err
	}
	if err != nil {
		return sum, led, fmt.Errorf("save counters and allowances: %w", err)
	}
	if err := tx.InsertMURs(ctx, ms); err != nil {
		return sum, led, err // already names what failed; a stored record id makes Store.Rate run the batch again
	}
	if err := tx.InsertExceptions(ctx, exs); err != nil {
		return sum, led, fmt.Errorf("insert exceptions: %w", err)
	}
	sum.MURs, sum.Exceptions = len(ms), len(exs)
	for _, e := range exs {
		if sum.ByCode == nil {
			sum.ByCode = map[codes.Code]int{}
		}
		sum.ByCode[e.Code]++
	}
	// What the batch leaves: the values it wrote, and those it loaded and
	// did not touch.
	addMissing(newCounters, loadedC)
	addMissing(newAllowances, loadedA)
	led = ledgerState{counters: newCounters, allowances: newAllowances}
	return sum, led, nil
}

func exception(it *Item, ce *codes.Error) exceptions.Exception {
	r := &it.Record
	body := it.Body
	if len(body) == 0 {
		body, _ = json.Marshal(r)
	}
	return exceptions.Exception{
		Client:   r.Client,
		FileID:   r.FileID,
		Line:     r.Line,
		Part:     r.Part,
		Parts:    r.Parts,
		RecordID: r.RecordID,
		Stage:    StageName,
		Code:     ce.Code,
		Field:    ce.Field,
		Message:  ce.Message,
		Record:   body,
	}
}

// addMissing copies into dst the entries of src whose keys dst lacks.
func addMissing[K comparable](dst, src map[K]string) {
	for k, v := range src {
		if _, ok := dst[k]; !ok {
			dst[k] = v
		}
	}
}
