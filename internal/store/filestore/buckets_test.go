package filestore_test

import (
	"context"
	"slices"
	"testing"

	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/store/filestore"
	"vivace.dev/vivace/internal/store/filestore/filestoretest"
)

func TestTakenObjects(t *testing.T) {
	ctx := context.Background()
	st := filestore.New(pgtest.Store(t))
	client := "bucket-" + ids.New()[24:]
	f, err := st.RegisterFile(ctx, filestoretest.File(client, "b1"))
	if err != nil {
		t.Fatal(err)
	}
	taken := files.BucketObject{Client: client, Bucket: "usage", Key: "in/a.csv", ETag: "e1",
		SizeBytes: 10, FileID: f.FileID, Outcome: files.Received}
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
	if want := []files.Status{"", "", files.Received, files.Received}; !slices.Equal(got, want) {
		t.Fatalf("taken = %v, want %v", got, want)
	}
	// Another bucket or another client has taken nothing.
	for _, q := range []struct{ client, bucket string }{{client, "other"}, {client + "-x", "usage"}} {
		got, err := st.TakenObjects(ctx, q.client, q.bucket, []string{"in/a.csv"}, []string{"e1"})
		if err != nil || !slices.Equal(got, []files.Status{""}) {
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
	refused.ETag, refused.Outcome = "e2", files.Rejected
	if err := st.RecordTakenObject(ctx, refused); err != nil {
		t.Fatal(err)
	}
	got, err = st.TakenObjects(ctx, client, "usage", []string{"in/a.csv", "in/a.csv"}, []string{"e2", "e1"})
	if want := []files.Status{files.Rejected, files.Received}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("taken = %v %v, want %v", got, err, want)
	}

	list, err := st.ListTakenObjects(ctx, client, "usage", 10)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %+v %v", list, err)
	}
	var first files.BucketObject
	for _, o := range list {
		if o.ETag == "e1" {
			first = o
		}
	}
	if o := first; o.Key != "in/a.csv" || o.FileID != f.FileID || o.Outcome != files.Received || o.TakenAt.IsZero() {
		t.Fatalf("listed %+v", list)
	}
}
