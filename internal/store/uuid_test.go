package store_test

import (
	"context"
	"strings"
	"testing"

	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/pgtest"
)

// uuidParams is a batch's worth of ids as the stores pass them: strings.
func uuidParams(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = ids.New()
	}
	return out
}

// TestUUIDParameters: ids passed as strings reach uuid and uuid[]
// parameters intact, and a string that is no uuid is still refused.
func TestUUIDParameters(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	want := uuidParams(3)
	var got []string
	if err := st.Pool().QueryRow(ctx, `SELECT array_agg(u::text ORDER BY o) FROM unnest($1::uuid[]) WITH ORDINALITY AS t(u, o)`, want).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != want[0] || got[2] != want[2] {
		t.Fatalf("uuid[] round trip = %v, want %v", got, want)
	}
	var one string
	if err := st.Pool().QueryRow(ctx, `SELECT $1::uuid::text`, want[1]).Scan(&one); err != nil || one != want[1] {
		t.Fatalf("uuid round trip = %q, %v; want %s", one, err, want[1])
	}
	var scanned [16]byte
	if err := st.Pool().QueryRow(ctx, `SELECT $1::uuid`, want[1]).Scan(&scanned); err != nil {
		t.Fatalf("scan a uuid into [16]byte: %v", err)
	}
	if _, err := st.Pool().Exec(ctx, `SELECT $1::uuid[]`, []string{"not-a-uuid"}); err == nil {
		t.Fatal("a string that is no uuid was accepted")
	}
}

// BenchmarkUUIDArrayParameter passes 2,000 ids as a uuid[] parameter, as
// the rating transaction's statements do for a batch's file ids.
func BenchmarkUUIDArrayParameter(b *testing.B) {
	ctx := context.Background()
	st := pgtest.Store(b)
	p := uuidParams(2000)
	b.ReportAllocs()
	for b.Loop() {
		var n int
		if err := st.Pool().QueryRow(ctx, `SELECT cardinality($1::uuid[])`, p).Scan(&n); err != nil || n != 2000 {
			b.Fatal(n, err)
		}
	}
}

// TestUUIDParametersOtherForms: forms PostgreSQL reads that are not the
// canonical one still reach it (as text).
func TestUUIDParametersOtherForms(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	id := ids.New()
	for _, in := range []string{strings.ToUpper(id), strings.ReplaceAll(id, "-", ""), "{" + id + "}"} {
		var got []string
		if err := st.Pool().QueryRow(ctx, `SELECT array_agg(u::text) FROM unnest($1::uuid[]) AS t(u)`, []string{in}).Scan(&got); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if len(got) != 1 || got[0] != id {
			t.Errorf("%s read as %v, want %s", in, got, id)
		}
	}
}
