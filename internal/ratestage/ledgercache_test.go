package ratestage_test

import (
	"context"
	"encoding/json"
	"testing"

	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/ratestage"
)

// TestRememberedCounterChecked: a stage remembers the counters its
// batches committed, but a counter changed in the database meanwhile (by
// another process, or by hand) is what the next batch rates with, not
// the remembered value; the same for a new stage, which remembers
// nothing.
func TestRememberedCounterChecked(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	client := unique("remember")
	seed(t, st, client)
	file := newFile(t, st, client)
	stage := newStage(st)

	// DATA is graduated: 1.00 up to 10 units a month, 0.50 above.
	if _, err := stage.Rate(ctx, []ratestage.Item{rec(client, file, 2, "d1", "A1", "DATA", "4", "2026-05-01T10:00:00Z")}); err != nil {
		t.Fatal(err)
	}
	// The batch left 4; the stage remembers 4. The database now says 9.
	tag, err := st.Pool().Exec(ctx, `UPDATE usage_counters SET quantity = quantity + 5
		WHERE client = $1 AND account_id = 'A1' AND usage_type = 'DATA'`, client)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("update counter: %v, %d rows", err, tag.RowsAffected())
	}
	// 3 units from 9: 1 at 1.00 and 2 at 0.50 = 2.00 (from 4 it would be 3.00).
	if _, err := stage.Rate(ctx, []ratestage.Item{rec(client, file, 3, "d2", "A1", "DATA", "3", "2026-05-02T10:00:00Z")}); err != nil {
		t.Fatal(err)
	}
	// And a batch that follows its own write uses the remembered 12: 0.50 a unit.
	if _, err := stage.Rate(ctx, []ratestage.Item{rec(client, file, 4, "d3", "A1", "DATA", "2", "2026-05-03T10:00:00Z")}); err != nil {
		t.Fatal(err)
	}
	// A second stage (another process) rates the account: the first
	// stage's memory is stale again and must not be trusted.
	if _, err := newStage(st).Rate(ctx, []ratestage.Item{rec(client, file, 5, "d4", "A1", "DATA", "1", "2026-05-04T10:00:00Z")}); err != nil {
		t.Fatal(err)
	}
	if _, err := stage.Rate(ctx, []ratestage.Item{rec(client, file, 6, "d5", "A1", "DATA", "1", "2026-05-05T10:00:00Z")}); err != nil {
		t.Fatal(err)
	}
	got := murRows(t, st, client)
	for id, want := range map[string]string{"d1": "4.00", "d2": "2.00", "d3": "1.00", "d4": "0.50", "d5": "0.50"} {
		if got[id].gross != want {
			t.Errorf("MUR %s gross = %q, want %s (detail %s)", id, got[id].gross, want, got[id].detail)
		}
	}
	var q string
	if err := st.Pool().QueryRow(ctx, `SELECT quantity::text FROM usage_counters
		WHERE client = $1 AND account_id = 'A1' AND usage_type = 'DATA'`, client).Scan(&q); err != nil {
		t.Fatal(err)
	}
	if q != "16" {
		t.Errorf("counter = %s, want 16 (4 + 5 by hand + 3 + 2 + 1 + 1)", q)
	}
	for id, want := range map[string]string{"d2": "9", "d5": "15"} {
		var d struct {
			Before string `json:"cumulative_before"`
		}
		if err := json.Unmarshal([]byte(got[id].detail), &d); err != nil || d.Before != want {
			t.Errorf("MUR %s rate_detail = %s, want cumulative_before %s", id, got[id].detail, want)
		}
	}
}
