package rulestore_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/rules"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/rulestore"
)

func loadCSV(t *testing.T, st *rulestore.Store, l rules.LookupLoad, body string) (rules.LookupLoadResult, error) {
	t.Helper()
	rows, err := rules.NewLookupCSV("msisdn.csv", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return st.LoadLookup(context.Background(), l, rows)
}

func TestLoadLookup(t *testing.T) {
	ctx := context.Background()
	st := rulestore.New(pgtest.Store(t))
	client := "lookup-" + store.NewID()[24:]
	l := rules.LookupLoad{Client: client, Lookup: "msisdn"}

	res, err := loadCSV(t, st, l, "msisdn,account_id,region\n491,A1,EU\n492,A2,EU\n493,A3,US\n")
	if err != nil {
		t.Fatal(err)
	}
	if res != (rules.LookupLoadResult{Entries: 3, Inserted: 3}) {
		t.Fatalf("first load: %+v", res)
	}
	keys := []rules.LookupKey{{Client: client, Key: "491"}, {Client: client, Key: "493"}, {Client: client, Key: "999"}, {Client: "other", Key: "491"}}
	got, err := st.LookupValues(ctx, "msisdn", keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[keys[0]]["account_id"] != "A1" || got[keys[1]]["region"] != "US" {
		t.Fatalf("values = %v", got)
	}

	// Without --replace a load adds and changes, and keeps the rest.
	res, err = loadCSV(t, st, l, "msisdn,account_id,region\n491,A1,EU\n492,A9,EU\n494,A4,APAC\n")
	if err != nil {
		t.Fatal(err)
	}
	if res != (rules.LookupLoadResult{Entries: 3, Inserted: 1, Updated: 1, Unchanged: 1}) {
		t.Fatalf("second load: %+v", res)
	}
	got, _ = st.LookupValues(ctx, "msisdn", []rules.LookupKey{{Client: client, Key: "492"}, {Client: client, Key: "493"}})
	if got[rules.LookupKey{Client: client, Key: "492"}]["account_id"] != "A9" || got[rules.LookupKey{Client: client, Key: "493"}] == nil {
		t.Fatalf("after the second load: %v", got)
	}

	// With --replace the entries not in the file go.
	l.Replace = true
	res, err = loadCSV(t, st, l, "msisdn,account_id,region\n491,A1,EU\n")
	if err != nil {
		t.Fatal(err)
	}
	if res != (rules.LookupLoadResult{Entries: 1, Unchanged: 1, Deleted: 3}) {
		t.Fatalf("replace: %+v", res)
	}
	list, err := st.ListLookups(ctx, client)
	if err != nil || len(list) != 1 || list[0].Lookup != "msisdn" || list[0].Entries != 1 || list[0].UpdatedAt.IsZero() {
		t.Fatalf("list: %+v %v", list, err)
	}
}

func TestLoadLookupBadFileChangesNothing(t *testing.T) {
	ctx := context.Background()
	st := rulestore.New(pgtest.Store(t))
	client := "lookup-" + store.NewID()[24:]
	l := rules.LookupLoad{Client: client, Lookup: "msisdn", Replace: true}
	if _, err := loadCSV(t, st, l, "msisdn,account_id\n491,A1\n"); err != nil {
		t.Fatal(err)
	}
	// A bad line far into the file rolls the whole load back.
	var b strings.Builder
	b.WriteString("msisdn,account_id\n")
	for i := range 5000 {
		b.WriteString(strconv.Itoa(50000000+i) + ",B\n")
	}
	b.WriteString("x,B,extra\n")
	_, err := loadCSV(t, st, l, b.String())
	if err == nil || !strings.Contains(err.Error(), "msisdn.csv line 5002: 3 fields, the header has 2") {
		t.Fatalf("bad line: %v", err)
	}
	got, err := st.LookupValues(ctx, "msisdn", []rules.LookupKey{{Client: client, Key: "491"}, {Client: client, Key: "50000000"}})
	if err != nil || len(got) != 1 || got[rules.LookupKey{Client: client, Key: "491"}]["account_id"] != "A1" {
		t.Fatalf("after a failed load: %v %v", got, err)
	}
	if _, err := loadCSV(t, st, rules.LookupLoad{Client: client, Lookup: "bad name"}, "k,v\n1,2\n"); err == nil ||
		!strings.Contains(err.Error(), `lookup "bad name"`) {
		t.Fatalf("bad name: %v", err)
	}
}
