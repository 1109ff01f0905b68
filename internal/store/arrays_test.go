package store_test

import (
	"context"
	"slices"
	"testing"

	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/pgtest"
)

// TestStringArrayParameters: string slices reach text[], uuid[] and
// numeric[] parameters element for element, NULLs, empty and NULL arrays
// included.
func TestStringArrayParameters(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	texts := []string{"", "plain", `quo"te`, `back\slash`, "{brace,comma}", "NULL", "tab\tnl\n", "été 東京 🎉"}
	var got []string
	if err := st.Pool().QueryRow(ctx, `SELECT array_agg(x ORDER BY o) FROM unnest($1::text[]) WITH ORDINALITY AS t(x, o)`, texts).Scan(&got); err != nil ||
		!slices.Equal(got, texts) {
		t.Fatalf("text[]: %q %v", got, err)
	}
	a, b := "a", "b"
	var nulls []bool
	if err := st.Pool().QueryRow(ctx, `SELECT array_agg(x IS NULL ORDER BY o) FROM unnest($1::text[]) WITH ORDINALITY AS t(x, o)`, []*string{&a, nil, &b}).
		Scan(&nulls); err != nil || !slices.Equal(nulls, []bool{false, true, false}) {
		t.Fatalf("text[] with a NULL: %v %v", nulls, err)
	}
	var isNull, empty bool
	if err := st.Pool().QueryRow(ctx, `SELECT $1::text[] IS NULL, $2::text[] = '{}'`, []string(nil), []string{}).Scan(&isNull, &empty); err != nil || !isNull || !empty {
		t.Fatalf("nil and empty text[]: %v %v %v", isNull, empty, err)
	}
	us := []string{ids.New(), ids.New()}
	if err := st.Pool().QueryRow(ctx, `SELECT array_agg(x::text ORDER BY o) FROM unnest($1::uuid[]) WITH ORDINALITY AS t(x, o)`, us).Scan(&got); err != nil ||
		!slices.Equal(got, us) {
		t.Fatalf("uuid[]: %q %v", got, err)
	}
	var sum string
	if err := st.Pool().QueryRow(ctx, `SELECT sum(x)::text FROM unnest($1::numeric[]) AS t(x)`, []*string{&texts[0], nil}).Scan(new(*string)); err == nil {
		t.Fatal("an empty string taken as a decimal")
	}
	one, half := "1", "0.50"
	if err := st.Pool().QueryRow(ctx, `SELECT sum(x)::text FROM unnest($1::numeric[]) AS t(x)`, []*string{&one, nil, &half}).Scan(&sum); err != nil || sum != "1.50" {
		t.Fatalf("numeric[] with a NULL: %q %v", sum, err)
	}
}
