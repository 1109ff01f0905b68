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

	// A refused object is recorded with its outcome: the same key with a
	// new ETag is another object.
	refused := taken
	refused.ETag, refused.Outcome = "e2", store.FileRejected
	if err := st.RecordTakenObject(ctx, refused); err != nil {
		t.Fatal(err)
	}
	got, err = st.TakenObjects(ctx, client, "usage", []string{"in/a.csv", "in/a.csv"}, []string{"e2", "e1"})
	if want := []string{store.FileRejected, store.FileReceived}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("taken = %v %v, want %v", got, err, want)
	}

	list, err := st.ListTakenObjects(ctx, client, "usage", 10)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %+v %v", list, err)
	}
	var first store.BucketObject
	for _, o := range list {
		if o.ETag == "e1" {
			first = o
		}
	}
	if o := first; o.Key != "in/a.csv" || o.FileID != f.FileID || o.Outcome != store.FileReceived || o.TakenAt.IsZero() {
		t.Fatalf("listed %+v", list)
	}
}
