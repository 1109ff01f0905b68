package store_test

import (
	"context"
	"slices"
	"testing"

	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store"
)

func TestTakenObjects(t *testing.T) {
	ctx := context.Background()
	st := pgtest.Store(t)
	client := "bucket-" + store.NewID()[24:]
	f, err := st.RegisterFile(ctx, newFile(client, "b1"))
	if err != nil {
		t.Fatal(err)
	}
	taken := store.BucketObject{Client: client, Bucket: "usage", Key: "in/a.csv", ETag: "e1",
		SizeBytes: 10, FileID: f.FileID, Outcome: store.FileReceived}
	if err := st.RecordTakenObject(ctx, taken); err != nil {
		t.Fatal(err)
	}
	// Recording again is harmless.
	if err := st.RecordTakenObject(ctx, taken); err != nil {
		t.Fatalf("record again: %v", err)
	}

	got, err := st.TakenObjects(ctx, client, "usage",
		[]string{"in/b.csv", "in/a.csv", "in/a.csv", "in/a.csv"},
		[]string{"e1", "e2", "e1", "e1"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"", "", store.FileReceived, store.FileReceived}; !slices.Equal(got, want) {
		t.Fatalf("taken = %v, want %v", got, want)
	}
	// Another bucket or another client has taken nothing.
	for _, q := range []struct{ client, bucket string }{{client, "other"}, {client + "-x", "usage"}} {
		got, err := st.TakenObjects(ctx, q.client, q.bucket, []string{"in/a.csv"}, []string{"e1"})
		if err != nil || !slices.Equal(got, []string{""}) {
			t.Fatalf("%s/%s: %v %v", q.client, q.bucket, got, err)
		}
	}
	if got, err := st.TakenObjects(ctx, client, "usage", nil, nil); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v %v", got, err)
	}
	if _, err := st.TakenObjects(ctx, client, "usage", []string{"a"}, nil); err == nil {
		t.Fatal("mismatched keys and etags: no error")
	}

	list, err := st.ListTakenObjects(ctx, client, "usage", 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %+v %v", list, err)
	}
	if o := list[0]; o.Key != "in/a.csv" || o.ETag != "e1" || o.FileID != f.FileID || o.Outcome != store.FileReceived || o.TakenAt.IsZero() {
		t.Fatalf("listed %+v", o)
	}
}
