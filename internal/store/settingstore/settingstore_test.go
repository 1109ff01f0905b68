package settingstore_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/settings"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/auditstore"
	"vivace.dev/vivace/internal/store/settingstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fresh returns the test database with no settings and no audit log:
// both are one set for the whole database, so the tests of this package
// run one at a time.
func fresh(t *testing.T) *store.Store {
	t.Helper()
	db := pgtest.Store(t)
	if _, err := db.Pool().Exec(context.Background(), `DELETE FROM system_settings; DELETE FROM audit_log`); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestSettingsAudited(t *testing.T) {
	ctx := context.Background()
	db := fresh(t)
	svc := &settings.Service{Store: settingstore.New(db)}
	log := auditstore.New(db)

	if m, err := svc.MURSync(ctx); err != nil || m != settings.DefaultMURSync() {
		t.Fatalf("empty table: %+v, %v", m, err)
	}
	if _, err := svc.Set(ctx, settings.MURSyncBatchSize, "200", "ana"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Set(ctx, settings.MURSyncAggregate, "false", "ana"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Set(ctx, settings.MURSyncBatchSize, "300", "bo"); err != nil {
		t.Fatal(err)
	}
	// A refused value changes nothing and records nothing.
	if _, err := svc.Set(ctx, settings.MURSyncBatchSize, "true", "bo"); err == nil {
		t.Fatal("a boolean batch size was accepted")
	}
	m, err := svc.MURSync(ctx)
	if err != nil || m.BatchSize != 300 || m.Aggregate {
		t.Fatalf("MURSync = %+v, %v", m, err)
	}
	got, err := svc.Get(ctx, settings.MURSyncBatchSize)
	if err != nil || got.UpdatedBy != "bo" || got.IsDefault || got.UpdatedAt == nil {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if _, err := svc.Reset(ctx, settings.MURSyncAggregate, "cy"); err != nil {
		t.Fatal(err)
	}

	entries, err := log.List(ctx, auditstore.Filter{Target: "setting:" + settings.MURSyncBatchSize})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("batch size entries: %+v", entries)
	}
	// Newest first.
	if entries[0].Actor != "bo" || string(entries[0].Before) != "200" || string(entries[0].After) != "300" {
		t.Errorf("second change: %+v", entries[0])
	}
	if entries[1].Actor != "ana" || string(entries[1].Before) != "1000" || string(entries[1].After) != "200" {
		t.Errorf("first change: %+v", entries[1])
	}
	resets, err := log.List(ctx, auditstore.Filter{Action: settings.ActionReset})
	if err != nil || len(resets) != 1 || string(resets[0].Before) != "false" || string(resets[0].After) != "true" {
		t.Fatalf("reset entries: %+v, %v", resets, err)
	}
}

// Changes of one key from many places at once each see the value the
// previous one left: the audit trail is a chain.
func TestConcurrentChangesChain(t *testing.T) {
	ctx := context.Background()
	db := fresh(t)
	svc := &settings.Service{Store: settingstore.New(db)}
	var wg sync.WaitGroup
	for i := 1; i <= 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := svc.Set(ctx, settings.MURSyncMaxAttempts, json.Number(string(rune('0'+i))).String(), "x"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	entries, err := auditstore.New(db).List(ctx, auditstore.Filter{Target: "setting:" + settings.MURSyncMaxAttempts})
	if err != nil || len(entries) != 8 {
		t.Fatalf("%d entries, %v", len(entries), err)
	}
	for i := 0; i+1 < len(entries); i++ {
		if string(entries[i].Before) != string(entries[i+1].After) {
			t.Fatalf("entry %d's before %s is not the after %s of the one before it", i, entries[i].Before, entries[i+1].After)
		}
	}
	if string(entries[len(entries)-1].Before) != "5" {
		t.Fatalf("the first change's before is %s, not the default", entries[len(entries)-1].Before)
	}
}
