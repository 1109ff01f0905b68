package syncstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"vivace.dev/vivace/internal/mursync"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/syncstore"
	"vivace.dev/vivace/internal/synctest"
)

// A plan takes its MURs off the queue where the read found them, or
// among the client's queue rows when that place no longer holds them; a second plan of the same
// MURs finds them gone and commits nothing.
func TestSavePlanTakesMURsOffTheQueue(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Store(t)
	st := syncstore.New(db)
	client := "q" + store.NewID()[24:]
	if _, err := synctest.Seed(ctx, db.Pool(), synctest.Spec{Client: client, MURs: 300, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	unlock, err := st.Lock(ctx, client, true)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	murs, err := st.Unsynced(ctx, client, mursync.Cursor{}, 1000)
	if err != nil || len(murs) != 300 {
		t.Fatalf("read %d MURs, %v; want 300", len(murs), err)
	}
	for i := range murs {
		if murs[i].Ref == 0 {
			t.Fatalf("MUR %d read without its place in the queue", i)
		}
		if i%3 == 0 {
			murs[i].Ref = 0 // as if the queue had been rewritten since
		} else if i%3 == 1 {
			murs[i].Ref += 1 << 16 // another block: a place that holds another row or none
		}
	}
	plan := func() mursync.Plan {
		agg, err := mursync.Aggregate(murs, true, store.NewID)
		if err != nil {
			t.Fatal(err)
		}
		p := mursync.Plan{Client: client, JobID: store.NewID(), Records: agg.Records, CreatedAt: time.Now(),
			Batches: []mursync.PlannedBatch{{ID: store.NewID(), From: 0, To: len(agg.Records)}}}
		for i, m := range murs {
			p.MURIDs, p.Of = append(p.MURIDs, m.ID), append(p.Of, agg.Of[i])
			p.Refs = append(p.Refs, m.Ref)
		}
		return p
	}
	if err := st.SavePlan(ctx, plan()); err != nil {
		t.Fatal(err)
	}
	var queued int
	if err := db.Pool().QueryRow(ctx, `SELECT count(*) FROM mur_sync_queue WHERE client = $1`, client).Scan(&queued); err != nil {
		t.Fatal(err)
	}
	if queued != 0 {
		t.Fatalf("%d MURs still queued after their plan", queued)
	}
	if left, err := st.Unsynced(ctx, client, mursync.Cursor{}, 1000); err != nil || len(left) != 0 {
		t.Fatalf("read %d MURs after the plan, %v; want none", len(left), err)
	}
	var records int
	if err := db.Pool().QueryRow(ctx, `SELECT count(*) FROM sync_aggregates WHERE client = $1`, client).Scan(&records); err != nil {
		t.Fatal(err)
	}
	if err := st.SavePlan(ctx, plan()); !errors.Is(err, mursync.ErrConcurrentChange) {
		t.Fatalf("second plan of the same MURs: %v, want %v", err, mursync.ErrConcurrentChange)
	}
	var after int
	if err := db.Pool().QueryRow(ctx, `SELECT count(*) FROM sync_aggregates WHERE client = $1`, client).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != records {
		t.Fatalf("%d records after the refused plan, %d before", after, records)
	}
}
