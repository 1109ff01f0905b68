package settings

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// MURSync is what the MUR sync reads at the start of each cycle and call.
type MURSync struct {
	BatchSize   int           // aggregated records per call
	Interval    time.Duration // between the starts of scheduled cycles
	Aggregate   bool          // sum MURs into records; false: one record per MUR
	MaxAttempts int           // tries of one call before a batch fails as unreachable
	RateLimit   float64       // calls per second per client; 0: no limit
	CallTimeout time.Duration // one try of a call
}

// DefaultMURSync is MURSync with every key at its default.
func DefaultMURSync() MURSync {
	m, err := murSyncFrom(nil)
	if err != nil {
		panic(err) // the defaults are checked by the tests
	}
	return m
}

// MURSync returns the MUR sync settings in effect. A stored value that no
// longer passes its check (written by hand into the table, say) is an
// error naming the key rather than a silent default.
func (s *Service) MURSync(ctx context.Context) (MURSync, error) {
	stored, err := s.Store.Load(ctx)
	if err != nil {
		return MURSync{}, fmt.Errorf("system settings: %w", err)
	}
	return murSyncFrom(stored)
}

func murSyncFrom(stored []Stored) (MURSync, error) {
	values := map[string]json.RawMessage{}
	for _, d := range defs {
		values[d.Key] = d.Default
	}
	for _, st := range stored {
		d, err := Lookup(st.Key)
		if err != nil {
			continue // a key of a newer version, or one retired: not ours to judge
		}
		v, err := d.Check(st.Value)
		if err != nil {
			return MURSync{}, fmt.Errorf("stored system setting (fix it with vivace config set %s VALUE): %w", st.Key, err)
		}
		values[st.Key] = v
	}
	var m MURSync
	var err error
	if m.BatchSize, err = intOf(values[MURSyncBatchSize]); err != nil {
		return m, err
	}
	if m.Interval, err = durationOf(values[MURSyncInterval]); err != nil {
		return m, err
	}
	if err = json.Unmarshal(values[MURSyncAggregate], &m.Aggregate); err != nil {
		return m, err
	}
	if m.MaxAttempts, err = intOf(values[MURSyncMaxAttempts]); err != nil {
		return m, err
	}
	if m.RateLimit, err = strconv.ParseFloat(string(values[MURSyncRateLimit]), 64); err != nil {
		return m, err
	}
	if m.CallTimeout, err = durationOf(values[MURSyncCallTimeout]); err != nil {
		return m, err
	}
	return m, nil
}

func intOf(raw json.RawMessage) (int, error) {
	n, err := strconv.Atoi(string(raw))
	return n, err
}

func durationOf(raw json.RawMessage) (time.Duration, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, err
	}
	return time.ParseDuration(s)
}
