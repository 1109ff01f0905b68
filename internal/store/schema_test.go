package store_test

import (
	"context"
	"testing"

	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store"
)

func TestSchemaVersionsOfAMigratedDatabase(t *testing.T) {
	cur, target, err := store.SchemaVersions(context.Background(), pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	if target < 25 || cur != target {
		t.Fatalf("schema %d of %d: want a migrated database at the newest version", cur, target)
	}
}
