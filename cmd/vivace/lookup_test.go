package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/rules"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestLookupLoadFile(t *testing.T) {
	t.Setenv("DATABASE_URL", pgtest.DSN(t))
	ctx := context.Background()
	dir := t.TempDir()
	good := filepath.Join(dir, "msisdn.csv")
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(good, []byte("msisdn,account_id\n491,A1\n492,A2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("msisdn,account_id\n493,A3\n\n,A4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := rules.LookupLoad{Client: "cli", Lookup: "msisdn"}
	res, err := loadLookupFile(ctx, good, l)
	if err != nil || res.Inserted != 2 {
		t.Fatalf("load: %+v %v", res, err)
	}
	_, err = loadLookupFile(ctx, bad, l)
	if err == nil || !strings.Contains(err.Error(), bad+` line 4: the key (column "msisdn") is empty`) {
		t.Fatalf("bad file: %v", err)
	}
	if _, err := loadLookupFile(ctx, filepath.Join(dir, "none.csv"), l); err == nil || !strings.Contains(err.Error(), "none.csv") {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := loadLookupFile(ctx, good, rules.LookupLoad{Lookup: "msisdn"}); err == nil || !strings.Contains(err.Error(), "client: required") {
		t.Fatalf("no client: %v", err)
	}
}
