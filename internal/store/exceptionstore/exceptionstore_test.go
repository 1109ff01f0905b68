package exceptionstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/kafkax"
	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/ratestage"
	"vivace.dev/vivace/internal/store/exceptionstore"
	"vivace.dev/vivace/internal/store/filestore"
	"vivace.dev/vivace/internal/store/filestore/filestoretest"
	"vivace.dev/vivace/internal/store/usagestore"
	"vivace.dev/vivace/internal/usage"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// world is a database and a broker with the service over them.
type world struct {
	fs     *filestore.Store
	us     *usagestore.Store
	xs     *exceptionstore.Store
	svc    *exceptions.Service
	reader *kgo.Client
}

func newWorld(t *testing.T) *world {
	t.Helper()
	st := pgtest.Store(t)
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, kafkax.TopicUsageRaw, kafkax.TopicUsageMediated))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	prod, err := kgo.NewClient(append(kafkax.SyncProducerOpts(), kgo.SeedBrokers(broker.ListenAddrs()...))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	reader, err := kgo.NewClient(kgo.SeedBrokers(broker.ListenAddrs()...),
		kgo.ConsumeTopics(kafkax.TopicUsageRaw, kafkax.TopicUsageMediated))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reader.Close)
	w := &world{fs: filestore.New(st), us: usagestore.New(st), xs: exceptionstore.New(st), reader: reader}
	w.svc = &exceptions.Service{Store: w.xs, Publisher: &kafkax.Reprocess{Client: prod}, Chunk: 2}
	return w
}

// read returns the next n records sent to the broker.
func (w *world) read(t *testing.T, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fetches := w.reader.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d records sent", len(out), n)
		}
		out = append(out, fetches.Records()...)
	}
	return out
}

func (w *world) insert(t *testing.T, exs ...exceptions.Exception) map[int64]string {
	t.Helper()
	ctx := context.Background()
	if _, err := w.us.InsertExceptions(ctx, exs); err != nil {
		t.Fatal(err)
	}
	page, err := w.xs.Exceptions(ctx, exceptions.Query{Filter: exceptions.Filter{FileID: exs[0].FileID}, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	byLine := map[int64]string{}
	for _, e := range page.Items {
		byLine[e.Line] = e.ExceptionID
	}
	return byLine
}

func fieldsJSON(m map[string]string) json.RawMessage {
	b, _ := json.Marshal(m)
	return b
}

func TestWorkExceptions(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	client := "work-" + ids.New()[24:]
	f, err := w.fs.RegisterFile(ctx, filestoretest.File(client, "w1"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	normal := usage.Record{Source: usage.Source{Client: client, FileID: f.FileID, Line: 3}, RecordID: "r3", AccountID: "GONE",
		UsageType: "calls", Quantity: "2", UsageTime: at}
	byLine := w.insert(t,
		exceptions.Exception{Client: client, FileID: f.FileID, Line: 2, RecordID: "r2", Stage: "mediate", Code: codes.BadQuantity,
			Field: "quantity", Message: `quantity "x" is not a decimal number`,
			Record: fieldsJSON(map[string]string{"record_id": "r2", "account_id": "A1", "usage_type": "calls", "quantity": "x", "usage_time": at.Format(time.RFC3339)})},
		exceptions.Exception{Client: client, FileID: f.FileID, Line: 3, RecordID: "r3", Stage: "rate", Code: codes.UnknownAccount,
			Field: "account_id", Message: `account "GONE" is not in the catalog`, Record: usage.AppendRecord(nil, normal)},
		exceptions.Exception{Client: client, FileID: f.FileID, Line: 4, Stage: "ingest", Code: codes.MalformedRecord,
			Message: "a broken quote", Record: fieldsJSON(map[string]string{"raw": `r4,"A1,calls`})},
	)
	bad, rated, broken := byLine[2], byLine[3], byLine[4]
	if bad == "" || rated == "" || broken == "" {
		t.Fatalf("exceptions stored: %v", byLine)
	}
	op := auth.NewPrincipal("t1", "olivia", auth.Operator, []string{client})
	viewer := auth.NewPrincipal("t2", "vic", auth.Viewer, []string{client})
	other := auth.NewPrincipal("t3", "otto", auth.Admin, []string{"someone-else"})

	// Seen only by tokens of the client.
	if _, err := w.svc.Get(ctx, other, bad); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("another client's token got the exception: %v", err)
	}
	page, err := w.svc.List(ctx, other, exceptions.Query{})
	if err != nil || len(page.Items) != 0 {
		t.Fatalf("another client's token listed %d exceptions (%v)", len(page.Items), err)
	}
	// Lists, filters, pages and counts.
	page, err = w.svc.List(ctx, viewer, exceptions.Query{Limit: 2})
	if err != nil || len(page.Items) != 2 || page.Next == "" || page.Items[0].ExceptionID < page.Items[1].ExceptionID {
		t.Fatalf("first page: %+v %v", page, err)
	}
	seen := map[int64]bool{page.Items[0].Line: true, page.Items[1].Line: true}
	page, err = w.svc.List(ctx, viewer, exceptions.Query{After: page.Next, Limit: 2})
	if err != nil || len(page.Items) != 1 || page.Next != "" || seen[page.Items[0].Line] {
		t.Fatalf("second page: %+v %v", page, err)
	}
	page, err = w.svc.List(ctx, viewer, exceptions.Query{Filter: exceptions.Filter{Code: codes.UnknownAccount, AccountID: "GONE"}})
	if err != nil || len(page.Items) != 1 || page.Items[0].ExceptionID != rated {
		t.Fatalf("account filter on a record in normal form: %+v %v", page.Items, err)
	}
	page, err = w.svc.List(ctx, viewer, exceptions.Query{Filter: exceptions.Filter{Stage: "mediate", Code: codes.BadQuantity, AccountID: "A1"}})
	if err != nil || len(page.Items) != 1 || page.Items[0].ExceptionID != bad {
		t.Fatalf("filtered: %+v %v", page, err)
	}
	counts, err := w.svc.Counts(ctx, viewer, exceptions.Filter{Client: client})
	if err != nil || len(counts) != 3 {
		t.Fatalf("counts: %+v %v", counts, err)
	}
	if _, err := w.svc.List(ctx, viewer, exceptions.Query{Filter: exceptions.Filter{Code: "NOPE"}}); err == nil {
		t.Fatal("an unknown code was taken")
	}

	// Edits are checked as the mediate stage checks; a viewer may not edit.
	if _, err := w.svc.Edit(ctx, viewer, bad, []byte(`{"quantity":"3"}`)); err == nil {
		t.Fatal("a viewer edited")
	}
	edited := map[string]string{"record_id": "r2", "account_id": "A1", "usage_type": "calls", "quantity": "-1", "usage_time": at.Format(time.RFC3339)}
	var refused *exceptions.Refused
	if _, err := w.svc.Edit(ctx, op, bad, fieldsJSON(edited)); !errors.As(err, &refused) || refused.Code != codes.BadQuantity || refused.Field != "quantity" {
		t.Fatalf("a negative quantity: %v", err)
	}
	if _, err := w.svc.Edit(ctx, op, bad, []byte(`{"quantity": 3}`)); !errors.As(err, &refused) || refused.Field != "quantity" {
		t.Fatalf("a number, not a string: %v", err)
	}
	edited["quantity"] = "3"
	d, err := w.svc.Edit(ctx, op, bad, fieldsJSON(edited))
	if err != nil || d.EditedBy != "olivia" || len(d.History) != 1 || d.History[0].Action != "exception.edit" {
		t.Fatalf("edit: %+v %v", d, err)
	}
	var kept map[string]string
	if err := json.Unmarshal(d.Record, &kept); err != nil || kept["quantity"] != "x" {
		t.Fatalf("the record as it arrived was not kept: %s", d.Record)
	}

	// Reprocess: the edited record to usage.raw, the rate stage's to
	// usage.mediated; the unread line cannot go unedited.
	out, job, err := w.svc.Reprocess(ctx, op, exceptions.Selection{IDs: []string{bad, rated, broken}})
	if err != nil || job != nil || len(out.Done) != 2 || out.Skipped[broken] == "" {
		t.Fatalf("reprocess: %+v %v %v", out, job, err)
	}
	recs := w.read(t, 2)
	for _, r := range recs {
		switch r.Topic {
		case kafkax.TopicUsageRaw:
			raw, err := usage.DecodeRaw(r.Value)
			if err != nil || raw.Fields["quantity"] != "3" || raw.Line != 2 || raw.FileID != f.FileID || string(r.Key) != "A1" {
				t.Errorf("to usage.raw: %s (%v)", r.Value, err)
			}
		case kafkax.TopicUsageMediated:
			var got usage.Record
			if err := json.Unmarshal(r.Value, &got); err != nil || got.Line != 3 || got.AccountID != "GONE" || !got.UsageTime.Equal(at) {
				t.Errorf("to usage.mediated: %s (%v)", r.Value, err)
			}
		}
	}
	for id, want := range map[string]exceptions.Status{bad: exceptions.Reprocessing, rated: exceptions.Reprocessing, broken: exceptions.Open} {
		e, _, err := w.xs.Exception(ctx, id)
		if err != nil || e.Status != want {
			t.Errorf("%s: %s, want %s (%v)", id, e.Status, want, err)
		}
		if want == exceptions.Reprocessing && e.Attempts != 2 {
			t.Errorf("%s: %d attempts, want 2", id, e.Attempts)
		}
	}
	// The same again sends nothing.
	out, _, err = w.svc.Reprocess(ctx, op, exceptions.Selection{IDs: []string{bad, rated}})
	if err != nil || len(out.Done) != 0 || len(out.Skipped) != 2 {
		t.Fatalf("second reprocess: %+v %v", out, err)
	}

	// The rate stage rates line 3 (once the account exists): the
	// exception is resolved and the file's counts move.
	before, _ := w.fs.GetFile(ctx, f.FileID)
	m := murs.MUR{Client: client, RecordID: "r3", FileID: f.FileID, Line: 3, AccountID: "GONE", UsageType: "calls",
		Quantity: "2", UsageTime: at, Currency: "USD", GrossAmount: "1", DiscountAmount: "0", NetAmount: "1", RateDetail: json.RawMessage(`{}`)}
	if err := w.us.Rate(ctx, func(tx ratestage.Tx) error { return tx.InsertMURs(ctx, []murs.MUR{m}) }); err != nil {
		t.Fatal(err)
	}
	after, _ := w.fs.GetFile(ctx, f.FileID)
	if after.Exceptions != before.Exceptions-1 || after.MURs != before.MURs+1 {
		t.Fatalf("counts: exceptions %d→%d, MURs %d→%d", before.Exceptions, after.Exceptions, before.MURs, after.MURs)
	}
	if e, wk, _ := w.xs.Exception(ctx, rated); e.Status != exceptions.Resolved || wk.Resolution != exceptions.Rated {
		t.Fatalf("rated: %s %s", e.Status, wk.Resolution)
	}
	// Line 2 fails again at the rate stage: open again, the record as it
	// arrived kept apart, the attempt counted once.
	again := exceptions.Exception{Client: client, FileID: f.FileID, Line: 2, RecordID: "r2", Stage: "rate", Code: codes.UnknownAccount,
		Field: "account_id", Message: "no A1", Record: json.RawMessage(`{"client":"x","account_id":"A1"}`)}
	if _, err := w.us.InsertExceptions(ctx, []exceptions.Exception{again}); err != nil {
		t.Fatal(err)
	}
	e, wk, _ := w.xs.Exception(ctx, bad)
	if e.Status != exceptions.Open || e.Attempts != 2 || e.Code != codes.UnknownAccount || wk.Edited != nil {
		t.Fatalf("failed again: %+v %+v", e, wk)
	}
	if err := json.Unmarshal(wk.Arrived, &kept); err != nil || kept["quantity"] != "x" {
		t.Fatalf("arrived: %s", wk.Arrived)
	}
	if f2, _ := w.fs.GetFile(ctx, f.FileID); f2.Exceptions != after.Exceptions {
		t.Fatalf("failing again counted again: %d → %d", after.Exceptions, f2.Exceptions)
	}

	// Discard needs a reason and a selection; by filter it is a job.
	if _, _, err := w.svc.Discard(ctx, op, exceptions.Selection{IDs: []string{broken}}, " "); !errors.As(err, &refused) {
		t.Fatalf("discard without a reason: %v", err)
	}
	if _, _, err := w.svc.Discard(ctx, op, exceptions.Selection{}, "why"); !errors.As(err, &refused) {
		t.Fatalf("discard of nothing: %v", err)
	}
	if _, _, err := w.svc.Discard(ctx, viewer, exceptions.Selection{IDs: []string{broken}}, "why"); err == nil {
		t.Fatal("a viewer discarded")
	}
	_, job, err = w.svc.Discard(ctx, op, exceptions.Selection{Filter: exceptions.Filter{Client: client}}, "test data")
	if err != nil || job == nil {
		t.Fatalf("discard by filter: %v %v", job, err)
	}
	w.svc.Wait()
	j, err := w.svc.Job(ctx, op, job.ID)
	if err != nil || j.Status != exceptions.JobDone || j.Done != 2 || j.Total != 2 {
		t.Fatalf("job: %+v %v", j, err)
	}
	if _, err := w.svc.Job(ctx, other, job.ID); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("another client's token saw the job: %v", err)
	}
	d, err = w.svc.Get(ctx, viewer, broken)
	if err != nil || d.Status != exceptions.Discarded || d.Reason != "test data" || d.Attempts != 1 || len(d.History) != 3 ||
		d.History[1].Action != "exception.reopen" || d.History[2].Action != "exception.discard" {
		t.Fatalf("discarded: %+v %v", d, err)
	}
}

// TestSuperseded: a corrected copy of a record (same record id, another
// file) becomes a MUR; the old open exception is resolved as superseded,
// naming the file and line, and its file's counts stay.
func TestSuperseded(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	client := "sup-" + ids.New()[24:]
	f1, _ := w.fs.RegisterFile(ctx, filestoretest.File(client, "s1"))
	f2, _ := w.fs.RegisterFile(ctx, filestoretest.File(client, "s2"))
	byLine := w.insert(t, exceptions.Exception{Client: client, FileID: f1.FileID, Line: 7, RecordID: "R-1", Stage: "rate",
		Code: codes.UnknownAccount, Message: "no account", Record: json.RawMessage(`{}`)},
		exceptions.Exception{Client: client, FileID: f1.FileID, Line: 8, RecordID: "R-2", Stage: "rate",
			Code: codes.UnknownAccount, Message: "no account", Record: json.RawMessage(`{}`)})
	m := murs.MUR{Client: client, RecordID: "R-1", FileID: f2.FileID, Line: 2, AccountID: "A", UsageType: "U",
		Quantity: "1", UsageTime: time.Now(), Currency: "USD", GrossAmount: "1", DiscountAmount: "0", NetAmount: "1", RateDetail: json.RawMessage(`{}`)}
	if err := w.us.Rate(ctx, func(tx ratestage.Tx) error { return tx.InsertMURs(ctx, []murs.MUR{m}) }); err != nil {
		t.Fatal(err)
	}
	e, wk, err := w.xs.Exception(ctx, byLine[7])
	if err != nil || e.Status != exceptions.Resolved || wk.Resolution != exceptions.Superseded || wk.SupersededBy == nil ||
		*wk.SupersededBy != (exceptions.Position{FileID: f2.FileID, Line: 2}) {
		t.Fatalf("superseded: %+v %+v %v", e, wk, err)
	}
	if e, _, _ := w.xs.Exception(ctx, byLine[8]); e.Status != exceptions.Open {
		t.Fatalf("another record id's exception: %s", e.Status)
	}
	if got, _ := w.fs.GetFile(ctx, f1.FileID); got.Exceptions != 2 {
		t.Fatalf("old file's exceptions: %d, want 2", got.Exceptions)
	}
}

// slowPublisher holds each publish until release is closed.
type slowPublisher struct {
	exceptions.Publisher
	started chan struct{}
	release chan struct{}
}

func (p *slowPublisher) Publish(ctx context.Context, msgs []exceptions.Message) error {
	select {
	case p.started <- struct{}{}:
	default:
	}
	<-p.release
	return p.Publisher.Publish(ctx, msgs)
}

// TestInterruptedJobs: a job whose process stopped (no progress saved for
// StaleJobAfter) is marked failed with why when jobs are read, and can
// no longer be saved as running; a job still at work keeps saving its
// progress between chunks and is never taken for interrupted.
func TestInterruptedJobs(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	client := "jobs-" + ids.New()[24:]
	op := auth.NewPrincipal("t1", "olivia", auth.Operator, []string{client})
	old := time.Now().Add(-10 * time.Minute).UTC()
	dead := exceptions.Job{ID: ids.New(), Action: "discard", Actor: "olivia", Clients: []string{client},
		Select: exceptions.Selection{Filter: exceptions.Filter{Client: client}}, Reason: "r", Status: exceptions.JobRunning,
		Started: old, Updated: old}
	if err := w.xs.CreateJob(ctx, dead); err != nil {
		t.Fatal(err)
	}
	j, err := w.svc.Job(ctx, op, dead.ID)
	if err != nil || j.Status != exceptions.JobFailed || !strings.Contains(j.Error, "interrupted") || j.Finished == nil {
		t.Fatalf("a job left running by a stopped process: %+v %v", j, err)
	}
	dead.Updated = time.Now()
	if err := w.xs.UpdateJob(ctx, dead); !errors.Is(err, exceptions.ErrJobStopped) {
		t.Fatalf("saving an interrupted job as running: %v", err)
	}

	// A job at work: its one chunk is held far longer than StaleJobAfter.
	f, err := w.fs.RegisterFile(ctx, filestoretest.File(client, "j1"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	rec := usage.Record{Source: usage.Source{Client: client, FileID: f.FileID, Line: 1}, RecordID: "r1", AccountID: "GONE",
		UsageType: "calls", Quantity: "2", UsageTime: at}
	w.insert(t, exceptions.Exception{Client: client, FileID: f.FileID, Line: 1, RecordID: "r1", Stage: "rate", Code: codes.UnknownAccount,
		Field: "account_id", Message: "gone", Record: usage.AppendRecord(nil, rec)})
	slow := &slowPublisher{Publisher: w.svc.Publisher, started: make(chan struct{}, 1), release: make(chan struct{})}
	svc := &exceptions.Service{Store: w.xs, Publisher: slow, StaleJobAfter: 2 * time.Second}
	_, job, err := svc.Reprocess(ctx, op, exceptions.Selection{Filter: exceptions.Filter{Client: client}})
	if err != nil || job == nil {
		t.Fatalf("reprocess by filter: %v %v", job, err)
	}
	<-slow.started
	time.Sleep(3 * time.Second) // longer than StaleJobAfter
	if j, err := svc.Job(ctx, op, job.ID); err != nil || j.Status != exceptions.JobRunning {
		t.Fatalf("a job at work taken for interrupted: %+v %v", j, err)
	}
	close(slow.release)
	svc.Wait()
	if j, err := svc.Job(ctx, op, job.ID); err != nil || j.Status != exceptions.JobDone || j.Done != 1 {
		t.Fatalf("the job at work: %+v %v", j, err)
	}
	w.read(t, 1)
}
