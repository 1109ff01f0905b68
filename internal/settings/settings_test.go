package settings

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		key, text string
		want      string // stored form; "" when an error is expected
		err       string
	}{
		{MURSyncBatchSize, "500", "500", ""},
		{MURSyncBatchSize, " 10000 ", "10000", ""},
		{MURSyncBatchSize, "0", "", "out of range (1 to 10000)"},
		{MURSyncBatchSize, "10001", "", "out of range"},
		{MURSyncBatchSize, "2.5", "", "not a whole number"},
		{MURSyncBatchSize, "1e3", "", "not a whole number"},
		{MURSyncBatchSize, `"500"`, "", "is a string, not a whole number"},
		{MURSyncBatchSize, "five", "", "is not a whole number"},
		{MURSyncBatchSize, "", "", "is not a whole number"},
		{MURSyncBatchSize, "1 2", "", "is not a whole number"},
		{MURSyncInterval, "10m", `"10m"`, ""},
		{MURSyncInterval, `"90s"`, `"90s"`, ""},
		{MURSyncInterval, "300", "", "is a number, not a duration"},
		{MURSyncInterval, "10 minutes", "", "not a duration such as"},
		{MURSyncInterval, "500ms", "", "out of range (1s to 24h0m0s)"},
		{MURSyncAggregate, "false", "false", ""},
		{MURSyncAggregate, "yes", "", "is not a true or false"},
		{MURSyncAggregate, "1", "", "is a number, not true or false"},
		{MURSyncMaxAttempts, "3", "3", ""},
		{MURSyncMaxAttempts, "-1", "", "out of range"},
		{MURSyncRateLimit, "0", "0", ""},
		{MURSyncRateLimit, "2.50", "2.5", ""},
		{MURSyncRateLimit, "-1", "", "out of range"},
		{MURSyncRateLimit, "null", "", "is a null, not a number"},
		{MURSyncCallTimeout, "2s", `"2s"`, ""},
		{"mur_sync.batchsize", "5", "", `unknown system setting "mur_sync.batchsize" (known: mur_sync.aggregate, mur_sync.batch_size,`},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.text, func(t *testing.T) {
			got, err := Parse(tt.key, tt.text)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Parse = %s, %v; want an error saying %q", got, err, tt.err)
				}
				if !strings.Contains(err.Error(), tt.key) {
					t.Errorf("error %q does not name the key", err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("Parse = %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	for _, d := range Defs() {
		if v, err := d.Check(d.Default); err != nil || string(v) != string(d.Default) {
			t.Errorf("%s: default %s does not pass its own check: %s, %v", d.Key, d.Default, v, err)
		}
	}
	m := DefaultMURSync()
	want := MURSync{BatchSize: 1000, Interval: 5 * time.Minute, Aggregate: true, MaxAttempts: 5, RateLimit: 20, CallTimeout: time.Minute}
	if m != want {
		t.Fatalf("defaults %+v, want %+v", m, want)
	}
}

func TestService(t *testing.T) {
	ctx := context.Background()
	st := &MemStore{}
	s := &Service{Store: st}
	set, err := s.Set(ctx, MURSyncBatchSize, "250", "ana")
	if err != nil {
		t.Fatal(err)
	}
	if string(set.Value) != "250" || set.IsDefault || set.UpdatedBy != "ana" || set.UpdatedAt == nil {
		t.Fatalf("after set: %+v", set)
	}
	if _, err := s.Set(ctx, MURSyncBatchSize, "abc", "ana"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad value: %v", err)
	}
	if _, err := s.Set(ctx, "nope", "1", "ana"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
	m, err := s.MURSync(ctx)
	if err != nil || m.BatchSize != 250 || !m.Aggregate {
		t.Fatalf("MURSync = %+v, %v", m, err)
	}
	if set, err = s.Reset(ctx, MURSyncBatchSize, "bo"); err != nil || !set.IsDefault || string(set.Value) != "1000" {
		t.Fatalf("after reset: %+v, %v", set, err)
	}
	entries := st.Entries()
	if len(entries) != 2 {
		t.Fatalf("audit entries: %+v", entries)
	}
	e0, e1 := entries[0], entries[1]
	if e0.Action != ActionSet || string(e0.Before) != "1000" || string(e0.After) != "250" || e0.Target != "setting:mur_sync.batch_size" {
		t.Errorf("set entry %+v", e0)
	}
	if e1.Action != ActionReset || string(e1.Before) != "250" || string(e1.After) != "1000" || e1.Actor != "bo" {
		t.Errorf("reset entry %+v", e1)
	}
	if _, err := s.Set(ctx, MURSyncInterval, "1m", ""); err == nil {
		t.Error("a change without an actor was accepted")
	}

	// A value broken by hand in the table stops the sync with the key named.
	st.Raw(MURSyncInterval, json.RawMessage(`"often"`))
	if _, err := s.MURSync(ctx); err == nil || !strings.Contains(err.Error(), MURSyncInterval) {
		t.Fatalf("broken stored value: %v", err)
	}
	// A key this version does not know is left alone.
	st.Forget(MURSyncInterval)
	st.Raw("future.key", json.RawMessage(`1`))
	if _, err := s.MURSync(ctx); err != nil {
		t.Fatal(err)
	}
	all, err := s.List(ctx)
	if err != nil || len(all) != len(defs) {
		t.Fatalf("List = %d settings, %v", len(all), err)
	}
}
