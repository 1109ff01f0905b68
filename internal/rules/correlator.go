package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/retry"
	"vivace.dev/vivace/internal/usage"
)

// CorrelationAttempts is how often a batch's correlation work that the
// store refused is tried before its records fail.
const CorrelationAttempts = 3

// SweepLimit bounds the groups of each kind one sweep emits.
const SweepLimit = 500

// Query is a rule's expression evaluated on a value (a Bloblang query,
// say): it answers a value of the same kinds encoding/json decodes into.
type Query func(v any) (any, error)

// CorrelatorConfig is one correlation rule with what it needs to run.
type CorrelatorConfig struct {
	// Rule names the rule's groups in the store.
	Rule string
	Correlation
	// ResendAfter is how long after an emission a group whose records
	// have no recorded outcome yet is emitted again.
	ResendAfter time.Duration
	// SweepEvery is how often, at most, data batches sweep (a tick always
	// does).
	SweepEvery time.Duration
	// Complete tells from the group value (see GroupValue) whether a group
	// is complete; Merge makes the merged record's fields from it.
	Complete, Merge Query
	// Store holds the groups.
	Store CorrelationStore
	// Refused reports whether a store error means the store refused the
	// work, so that nothing of it was committed (nil: no error does).
	Refused func(error) bool
	// Warnf, when set, hears about the waits on the store.
	Warnf func(format string, args ...any)
	// MaxWait, when positive, bounds how long a store that cannot be
	// reached is waited for before the batch's records fail. Only for
	// runs without durable state to protect (vivace test): a transaction
	// whose commit is unknown may have held the records.
	MaxWait time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Validate joins every problem of the settings.
func (c CorrelatorConfig) Validate() error {
	var errs []error
	if c.Rule == "" {
		errs = append(errs, errors.New("name: required; it names the rule's groups in the database"))
	}
	if err := c.Correlation.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.ResendAfter <= 0 {
		errs = append(errs, errors.New("resend_after: must be positive"))
	}
	if c.SweepEvery < 0 {
		errs = append(errs, fmt.Errorf("sweep_interval: %s is negative", c.SweepEvery))
	}
	if c.Complete == nil || c.Merge == nil {
		errs = append(errs, errors.New("complete and merge: both are required"))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("a correlation store is required"))
	}
	return errors.Join(errs...)
}

// Correlator runs a correlation rule over a store: Add holds records in
// their groups and emits the groups that are complete, Sweep emits those
// that timed out and again those whose outcome is not recorded yet. It is
// safe for concurrent use.
type Correlator struct {
	cfg   CorrelatorConfig
	retry retry.Policy

	mu        sync.Mutex
	lastSweep time.Time
}

// NewCorrelator checks cfg and returns its Correlator.
func NewCorrelator(cfg CorrelatorConfig) (*Correlator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Correlator{cfg: cfg, retry: storeRetry(cfg.Refused, CorrelationAttempts, 200*time.Millisecond, cfg.MaxWait)}
	if cfg.Warnf != nil {
		c.retry.Warnf = func(format string, args ...any) {
			cfg.Warnf("correlation rule %s: "+format, append([]any{cfg.Rule}, args...)...)
		}
	}
	return c, nil
}

// Emitted is a group that leaves the rule, rendered: one record per held
// record, in arrival order.
type Emitted struct {
	Group   CorrelationGroup
	Records []EmittedRecord
}

// EmittedRecord is one record of an emitted group: its body (the merged
// raw record for the group's first record, else the record as held), the
// message metadata it arrived with, and, for every record but the merged
// one, the FILTERED or MEDIATION_FAILED error it leaves with.
type EmittedRecord struct {
	Body json.RawMessage
	Meta map[string]string
	Err  *codes.Error
}

// AddResult is what Add did.
type AddResult struct {
	Held     int // records now held in a group
	Replayed int // records already held or already ended
	Emitted  []Emitted
}

// Add holds parts in their groups and returns the groups that are now
// complete (or past their deadline). While the store cannot be reached it
// waits: whether the work committed is unknown, and failing the records
// could give a held record an exception too. An error means the store
// refused the work CorrelationAttempts times, or ctx ended: nothing of it
// was kept, and every part should fail.
func (c *Correlator) Add(ctx context.Context, parts []CorrelationPart) (AddResult, error) {
	var out AddResult
	if len(parts) == 0 {
		return out, nil
	}
	now := c.cfg.Now()
	read := groupsRead{}
	var res CorrelateResult
	err := c.retry.Do(ctx, func(ctx context.Context) error {
		var err error
		res, err = c.cfg.Store.CorrelateParts(ctx, c.cfg.Rule, parts, c.cfg.Window, now, c.decider(now, read))
		return err
	})
	if err != nil {
		return out, err
	}
	out.Held, out.Replayed = res.Held, res.Replayed
	for _, g := range res.Emitted {
		out.Emitted = append(out.Emitted, c.render(g, read))
	}
	return out, nil
}

// SweepOutcome is what Sweep did.
type SweepOutcome struct {
	Swept    bool      // false: no sweep was due
	TimedOut []Emitted // open groups past their deadline
	Resent   []Emitted // emitted groups whose outcome is not recorded yet
	Cleaned  int       // emitted groups whose every record has an outcome, deleted
}

// Sweep emits the groups that timed out and, again, those emitted more
// than ResendAfter ago whose records have no recorded outcome yet. A tick
// always sweeps; otherwise a sweep is due SweepEvery after the last one,
// counted from the first batch Add or Sweep saw. A failed sweep changes
// nothing and is tried on the next one.
func (c *Correlator) Sweep(ctx context.Context, tick bool) (SweepOutcome, error) {
	var out SweepOutcome
	now := c.cfg.Now()
	if !c.due(tick, now) {
		return out, nil
	}
	out.Swept = true
	read := groupsRead{}
	res, err := c.cfg.Store.SweepCorrelation(ctx, c.cfg.Rule, now, c.cfg.ResendAfter, SweepLimit, c.decider(now, read))
	if err != nil {
		return out, fmt.Errorf("sweep: %w", err)
	}
	for _, g := range res.TimedOut {
		out.TimedOut = append(out.TimedOut, c.render(g, read))
	}
	for _, g := range res.Resent {
		out.Resent = append(out.Resent, c.render(g, read))
	}
	out.Cleaned = res.Cleaned
	return out, nil
}

func (c *Correlator) due(tick bool, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastSweep.IsZero() && !tick { // the first data batch: count from here
		c.lastSweep = now
		return false
	}
	if !tick && now.Sub(c.lastSweep) < c.cfg.SweepEvery {
		return false
	}
	c.lastSweep = now
	return true
}

// decider answers the outcome of a group now: complete, timed out or
// open. A complete check that cannot be evaluated fails the group.
func (c *Correlator) decider(now time.Time, read groupsRead) Decider {
	return func(g *CorrelationGroup) (Outcome, error) {
		complete, err := c.isComplete(read.get(g).value)
		if err != nil {
			return OutcomeFailed, nil
		}
		return c.cfg.Decide(complete, g.Deadline, now), nil
	}
}

func (c *Correlator) isComplete(group map[string]any) (bool, error) {
	v, err := c.cfg.Complete(group)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("returned %T, not a boolean", v)
	}
	return b, nil
}

// merge runs the merge query and insists on flat, exact fields.
func (c *Correlator) merge(group map[string]any) (map[string]string, error) {
	v, err := c.cfg.Merge(group)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("returned %T, not an object of fields", v)
	}
	fields := make(map[string]string, len(obj))
	for k, x := range obj {
		if x == nil {
			continue
		}
		s, err := ExactString(x)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", k, err)
		}
		fields[k] = s
	}
	return fields, nil
}

// render turns an emitted group into its records: the merged record and
// the filtered others, or every record failed.
func (c *Correlator) render(g CorrelationGroup, read groupsRead) Emitted {
	r := read.get(&g)
	var merged map[string]string
	var ruleErr error
	switch g.Outcome {
	case OutcomeComplete, OutcomeIncomplete:
		if merged, ruleErr = c.merge(r.value); ruleErr != nil {
			ruleErr = fmt.Errorf("merge: %w", ruleErr)
		}
	default:
		if _, err := c.isComplete(r.value); err != nil {
			ruleErr = fmt.Errorf("complete: %w", err)
		}
	}
	e := c.cfg.Emit(Group{Key: g.Key, OpenedAt: g.OpenedAt, Members: r.members}, g.Outcome, merged, ruleErr)
	out := Emitted{Group: g, Records: make([]EmittedRecord, len(g.Parts))}
	for i, part := range g.Parts {
		rec := EmittedRecord{Body: part.Record, Meta: part.Meta}
		if i == 0 && e.Merged != nil {
			if b, err := json.Marshal(e.Merged); err == nil {
				rec.Body = b
			}
		}
		if ce := e.Filtered[i]; ce != nil {
			rec.Err = ce
		} else if ce := e.Failed[i]; ce != nil {
			rec.Err = ce
		}
		out.Records[i] = rec
	}
	return out
}

// groupsRead keeps the groups of one batch as read back, by id, so that
// deciding and emitting a group parse its records once.
type groupsRead map[int64]groupRead

type groupRead struct {
	parts   int
	members []usage.Raw
	value   map[string]any
}

func (r groupsRead) get(g *CorrelationGroup) groupRead {
	if gr, ok := r[g.GroupID]; ok && gr.parts == len(g.Parts) {
		return gr
	}
	ms := Members(g)
	gr := groupRead{parts: len(g.Parts), members: ms, value: GroupValue(g.Key, ms)}
	r[g.GroupID] = gr
	return gr
}

// Members reads a group's held records back, in arrival order.
func Members(g *CorrelationGroup) []usage.Raw {
	ms := make([]usage.Raw, len(g.Parts))
	for i, part := range g.Parts {
		_ = json.Unmarshal(part.Record, &ms[i]) // stored only after it was read once
		ms[i].Client, ms[i].FileID = part.Client, part.FileID
		ms[i].Line, ms[i].Part = part.Line, part.Part
	}
	return ms
}

// GroupValue is what a rule's complete and merge queries see: the key and
// the raw records in arrival order, {"key": ..., "records": [{"client",
// "file_id", "line", "fields", and "part", "parts" for a split line}]}.
func GroupValue(key string, ms []usage.Raw) map[string]any {
	recs := make([]any, len(ms))
	for i, m := range ms {
		fields := make(map[string]any, len(m.Fields))
		for k, v := range m.Fields {
			fields[k] = v
		}
		r := map[string]any{"client": m.Client, "file_id": m.FileID, "line": m.Line, "fields": fields}
		if m.Part != 0 || m.Parts != 0 {
			r["part"], r["parts"] = int64(m.Part), int64(m.Parts)
		}
		recs[i] = r
	}
	return map[string]any{"key": key, "records": recs}
}

// KeyFrom is a record's correlation key from what the rule's key query
// answered (v, or the query's error): a missing or empty key, or one that
// is not a plain value, fails the record with MEDIATION_FAILED naming the
// key field.
func (c Correlation) KeyFrom(v any, queryErr error) (string, error) {
	name := c.KeyName
	if name == "" {
		name = "correlation key"
	}
	if queryErr != nil {
		return "", codes.Errorf(codes.MediationFailed, c.KeyName, "%s: cannot read the correlation key: %v", name, queryErr)
	}
	key, err := ExactString(v)
	if err == nil && key == "" {
		err = errors.New("missing or empty")
	}
	if err != nil {
		return "", codes.Errorf(codes.MediationFailed, c.KeyName, "%s: the correlation key is %v", name, err)
	}
	return key, nil
}
