package syncstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/bulkapi"
	"vivace.dev/vivace/internal/corelink"
	"vivace.dev/vivace/internal/fakecore"
	"vivace.dev/vivace/internal/mursync"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/settings"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/settingstore"
	"vivace.dev/vivace/internal/store/syncstore"
	"vivace.dev/vivace/internal/synctest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	clientNo = 4242
	authKey  = "fake-core-key"
)

// rig is the MUR sync over the test database and a fake core on a real
// HTTP port. The batches travel from the operations service to the sync
// service through direct, which delivers each to the sync service as the
// batches topic would (and, like it, again when handling failed).
type rig struct {
	t        *testing.T
	ctx      context.Context
	client   string
	db       *store.Store
	st       *syncstore.Store
	core     *fakecore.Server
	link     *corelink.Link
	settings *settings.Service
	ops      *mursync.Ops
	sender   *mursync.Sender
	broker   *direct
	// answerWait is how long cycles wait for answers; 0 means 30s.
	answerWait time.Duration
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ctx := context.Background()
	db := pgtest.Store(t)
	// System settings are one set for the whole database: each test
	// starts from the defaults (the tests of this package run one at a
	// time).
	if _, err := db.Pool().Exec(ctx, `DELETE FROM system_settings`); err != nil {
		t.Fatal(err)
	}
	core := synctest.StartCore(t, fakecore.Credential{ClientNo: clientNo, AuthKey: authKey})
	r := &rig{t: t, ctx: ctx, client: "c" + store.NewID()[24:], db: db, st: syncstore.New(db), core: core}
	r.settings = &settings.Service{Store: settingstore.New(db)}
	r.link = &corelink.Link{Defaults: corelink.Defaults{URL: core.URL(), ClientNo: clientNo, AuthKey: bulkapi.NewSecret(authKey)},
		BackoffBase: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond}
	r.sender = &mursync.Sender{Store: r.st, Core: r.link, Settings: r.settings}
	r.broker = &direct{sender: r.sender}
	r.ops = r.newOps(r.st, "test:1")
	t.Cleanup(r.broker.wait)
	return r
}

func (r *rig) newOps(st mursync.OpsStore, owner string) *mursync.Ops {
	return &mursync.Ops{Store: st, Broker: r.broker, Settings: r.settings, NewID: store.NewID, Owner: owner,
		PollEvery: 10 * time.Millisecond}
}

func (r *rig) set(key, value string) {
	r.t.Helper()
	if _, err := r.settings.Set(r.ctx, key, value, "test"); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) seed(n int, seed uint64) {
	r.t.Helper()
	if _, err := synctest.Seed(r.ctx, r.db.Pool(), synctest.Spec{Client: r.client, MURs: n, Seed: seed}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) run(trigger mursync.Trigger, sel mursync.Selection) (mursync.Summary, error) {
	r.t.Helper()
	sel.Client = r.client
	wait := r.answerWait
	if wait == 0 {
		wait = 30 * time.Second
	}
	return r.ops.Run(r.ctx, mursync.Request{Client: r.client, Trigger: trigger, By: "test",
		AnswerWait: wait, Retry: sel})
}

func (r *rig) counts() synctest.Counts {
	r.t.Helper()
	c, err := synctest.StatusCounts(r.ctx, r.db.Pool(), r.client)
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

func (r *rig) faults(f fakecore.Faults) {
	r.t.Helper()
	if err := r.core.SetFaults(f); err != nil {
		r.t.Fatal(err)
	}
}

// checkTotals compares the core's totals with the synced MURs' and
// checks that every MUR is accounted for: synced ones with a record and
// a batch, none left half way.
func (r *rig) checkTotals(wantSynced int) {
	r.t.Helper()
	synced := synctest.CheckTotals(r.t, r.ctx, r.db.Pool(), r.core.Core, r.client, clientNo)
	if synced != wantSynced {
		r.t.Fatalf("%d MURs synced, want %d (%v)", synced, wantSynced, r.counts())
	}
	var missing int
	if err := r.db.Pool().QueryRow(r.ctx, `SELECT count(*) FROM murs m LEFT JOIN sync_aggregates a ON a.aggregate_id = m.aggregate_id
		WHERE m.client = $1 AND m.sync_status <> 'unsynced'
		  AND (a.aggregate_id IS NULL OR m.sync_batch_id IS DISTINCT FROM a.batch_id
		       OR (m.sync_status = 'synced') <> (a.status = 'synced'))`, r.client).Scan(&missing); err != nil {
		r.t.Fatal(err)
	}
	if missing > 0 {
		r.t.Fatalf("%d MURs disagree with their aggregated record", missing)
	}
}

// direct delivers published batches straight to the sync service as the
// batches topic would: batches in parallel, but the messages of one batch
// (keyed alike, so on one partition) one after another; a batch whose
// handling failed comes again after a short pause.
type direct struct {
	sender *mursync.Sender
	// before and after, when set, fail a Publish before the batches are
	// handed over or after (as a publish whose acknowledgement was lost).
	before, after func() error
	// hold keeps published batches back until release.
	hold bool

	mu      sync.Mutex
	results []mursync.Result
	held    []mursync.BatchMessage
	last    map[string]chan struct{}
	wg      sync.WaitGroup
}

func (d *direct) Publish(ctx context.Context, msgs []mursync.Message) error {
	if d.before != nil {
		if err := d.before(); err != nil {
			return err
		}
	}
	for _, m := range msgs {
		var b mursync.BatchMessage
		if err := json.Unmarshal(m.Value, &b); err != nil {
			return err
		}
		if string(m.Key) != b.BatchID {
			return fmt.Errorf("message key %s is not its batch %s", m.Key, b.BatchID)
		}
		d.deliver(b)
	}
	if d.after != nil {
		return d.after()
	}
	return nil
}

func (d *direct) deliver(b mursync.BatchMessage) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.hold {
		d.held = append(d.held, b)
		return
	}
	if d.last == nil {
		d.last = map[string]chan struct{}{}
	}
	// Each message of a batch waits for the one before it.
	prev, done := d.last[b.BatchID], make(chan struct{})
	d.last[b.BatchID] = done
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(done)
		if prev != nil {
			<-prev
		}
		for {
			res, err := d.sender.Handle(context.Background(), b)
			if err == nil {
				d.mu.Lock()
				d.results = append(d.results, res)
				d.mu.Unlock()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
}

// release delivers the batches held back.
func (d *direct) release() {
	d.mu.Lock()
	held := d.held
	d.held, d.hold = nil, false
	d.mu.Unlock()
	for _, b := range held {
		d.deliver(b)
	}
}

func (d *direct) wait() { d.wg.Wait() }

func TestHappyPath(t *testing.T) {
	r := newRig(t)
	r.set(settings.MURSyncBatchSize, "25")
	r.seed(3000, 1)
	sum, err := r.run(mursync.ByHand, mursync.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sum.Complete(); err != nil {
		t.Fatal(err)
	}
	if sum.MURs != 3000 || sum.Failed != 0 || sum.Synced != sum.Aggregates || sum.Batches != (sum.Aggregates+24)/25 {
		t.Fatalf("summary %+v", sum)
	}
	// 20 accounts × 3 usage types × 3 days, some not drawn.
	if sum.Aggregates > 180 || sum.Aggregates < 150 {
		t.Fatalf("%d aggregated records from 3000 MURs over 180 keys", sum.Aggregates)
	}
	if c := r.counts(); c["synced"] != 3000 {
		t.Fatalf("counts %v", c)
	}
	r.checkTotals(3000)
	jobs, err := r.st.Jobs(r.ctx, mursync.JobFilter{Clients: []string{r.client}})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("jobs %+v, %v", jobs, err)
	}
	j := jobs[0]
	if j.Status != mursync.JobDone || j.FinishedAt == nil || j.Synced != sum.Synced || j.MURs != 3000 || j.Trigger != mursync.ByHand ||
		j.RequestedBy != "test" || j.Owner != "test:1" {
		t.Fatalf("job %+v", j)
	}
	batches, err := r.st.Batches(r.ctx, mursync.BatchFilter{Clients: []string{r.client}, Limit: 1000})
	if err != nil || len(batches) != sum.Batches {
		t.Fatalf("%d batches, %v", len(batches), err)
	}
	for _, b := range batches {
		if b.Status != mursync.Done || b.Records > 25 || b.Synced != b.Records || b.Attempts != 1 || b.AnsweredAt == nil {
			t.Fatalf("batch %+v", b)
		}
	}
	// A second cycle finds nothing to do and sends nothing.
	calls := r.core.Stats().Calls
	sum, err = r.run(mursync.BySchedule, mursync.Selection{})
	if err != nil || sum.Batches != 0 || sum.MURs != 0 {
		t.Fatalf("second cycle %+v, %v", sum, err)
	}
	if r.core.Stats().Calls != calls {
		t.Fatal("the second cycle called the core")
	}
}

func TestOneRecordPerMUR(t *testing.T) {
	r := newRig(t)
	r.set(settings.MURSyncAggregate, "false")
	r.set(settings.MURSyncBatchSize, "100")
	r.seed(450, 2)
	sum, err := r.run(mursync.BySchedule, mursync.Selection{})
	if err != nil || sum.Complete() != nil {
		t.Fatal(err, sum.Complete())
	}
	if sum.Aggregates != 450 || sum.Batches != 5 || sum.Synced != 450 {
		t.Fatalf("summary %+v", sum)
	}
	r.checkTotals(450)
	// Each record at the core names its MUR, its own usage time and its
	// qualifiers.
	roaming := 0
	for _, rec := range r.core.Records(fakecore.Filter{ClientNo: clientNo}) {
		if !strings.HasPrefix(rec.Comments, "MUR "+r.client+"-") || len(rec.UsageDate) != 19 {
			t.Fatalf("record %+v", rec)
		}
		if rec.Qualifier1 == "roaming" {
			roaming++
		}
	}
	if roaming == 0 || roaming == 450 {
		t.Fatalf("%d of 450 records with qualifier_1, a quarter of the MURs have it", roaming)
	}
}

func TestPerRecordRejections(t *testing.T) {
	r := newRig(t)
	r.set(settings.MURSyncBatchSize, "10")
	r.seed(2000, 3)
	r.faults(fakecore.Faults{RejectAccounts: map[string]fakecore.Rejection{"A0003": {}, "A0007": {Code: 1016, Msg: "invalid input"}}})
	sum, err := r.run(mursync.ByHand, mursync.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	// Refusals one by one are an outcome, not a failure of the cycle.
	if err := sum.Complete(); err != nil {
		t.Fatal(err)
	}
	if sum.Failed == 0 || sum.Synced+sum.Failed != sum.Aggregates {
		t.Fatalf("summary %+v", sum)
	}
	failed, err := r.st.Records(r.ctx, mursync.RecordFilter{Clients: []string{r.client}, Status: mursync.Refused})
	if err != nil || len(failed) != sum.Failed {
		t.Fatalf("%d failed records, %v", len(failed), err)
	}
	for _, f := range failed {
		switch {
		case f.AccountID == "A0003" && f.Code == 1009:
		case f.AccountID == "A0007" && f.Code == 1016 && f.Message == "invalid input":
		default:
			t.Fatalf("failed record %+v", f)
		}
	}
	var murErr string
	if err := r.db.Pool().QueryRow(r.ctx, `SELECT sync_error FROM murs WHERE client = $1 AND account_id = 'A0007' LIMIT 1`, r.client).Scan(&murErr); err != nil {
		t.Fatal(err)
	}
	if murErr != "record_error_code 1016: invalid input" {
		t.Fatalf("MUR sync_error %q", murErr)
	}
	c := r.counts()
	r.checkTotals(c["synced"])
	if c["failed"] == 0 || c["synced"]+c["failed"] != 2000 {
		t.Fatalf("counts %v", c)
	}

	// Fixed at the core, the failed records go again with their ids.
	ids := map[string]bool{}
	for _, f := range failed {
		ids[f.ID] = true
	}
	r.faults(fakecore.Faults{})
	sum, err = r.run(mursync.ByRetry, mursync.Selection{})
	if err != nil || sum.Complete() != nil {
		t.Fatal(err, sum.Complete())
	}
	if sum.Aggregates != len(failed) || sum.Synced != len(failed) {
		t.Fatalf("retry summary %+v", sum)
	}
	for _, rec := range r.core.Records(fakecore.Filter{ClientNo: clientNo}) {
		delete(ids, rec.ClientRecordID)
	}
	if len(ids) != 0 {
		t.Fatalf("%d resent records did not keep their client_record_id", len(ids))
	}
	r.checkTotals(2000)
	// Nothing is left to send again.
	if _, err := r.run(mursync.ByRetry, mursync.Selection{}); !errors.Is(err, mursync.ErrNothingToRetry) {
		t.Fatalf("second retry: %v", err)
	}
}

func TestServerErrorStorm(t *testing.T) {
	r := newRig(t)
	r.set(settings.MURSyncBatchSize, "50")
	r.set(settings.MURSyncMaxAttempts, "4")
	r.seed(1500, 4)
	// Three 503s, then the core answers: the retries within the call
	// carry the batch through.
	r.faults(fakecore.Faults{HTTPError: fakecore.HTTPErrorFault{Trigger: fakecore.Trigger{Next: 3}}})
	sum, err := r.run(mursync.BySchedule, mursync.Selection{})
	if err != nil || sum.Complete() != nil {
		t.Fatal(err, sum.Complete())
	}
	if r.core.Stats().HTTPErrors != 3 {
		t.Fatalf("stats %+v", r.core.Stats())
	}
	r.checkTotals(1500)

	// A storm longer than the attempts: the batches fail as unavailable,
	// then the next cycle, with the core back, sends them again.
	r.seed(700, 5)
	r.faults(fakecore.Faults{HTTPError: fakecore.HTTPErrorFault{Trigger: fakecore.Trigger{Fraction: 1}, Status: 502}})
	sum, err = r.run(mursync.BySchedule, mursync.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Complete() == nil || len(sum.Failures) != sum.Batches || sum.Failures[0].Failure != mursync.FailUnavailable {
		t.Fatalf("storm summary %+v", sum)
	}
	if c := r.counts(); c["failed"] != 700 || c["synced"] != 1500 {
		t.Fatalf("counts during the storm %v", c)
	}
	r.checkTotals(1500)
	r.faults(fakecore.Faults{})
	sum, err = r.run(mursync.BySchedule, mursync.Selection{})
	if err != nil || sum.Complete() != nil || sum.MURs != 700 {
		t.Fatalf("after the storm: %+v, %v", sum, err)
	}
	r.checkTotals(2200)
}

func TestWholeCallRefused(t *testing.T) {
	r := newRig(t)
	r.seed(300, 6)
	r.link.Defaults.AuthKey = bulkapi.NewSecret("wrong")
	sum, err := r.run(mursync.ByHand, mursync.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Failures) != 1 || sum.Failures[0].Failure != mursync.FailRefused || sum.Failures[0].Code != 1004 {
		t.Fatalf("summary %+v", sum)
	}
	if c := r.counts(); c["failed"] != 300 {
		t.Fatalf("counts %v", c)
	}
	// Refused as a whole, the batch is not tried again unasked.
	r.link.Defaults.AuthKey = bulkapi.NewSecret(authKey)
	if sum, err = r.run(mursync.BySchedule, mursync.Selection{}); err != nil || sum.Batches != 0 {
		t.Fatalf("scheduled cycle after a refusal: %+v, %v", sum, err)
	}
	r.checkTotals(0)
	failedBatch := sum.JobID
	_ = failedBatch
	batches, err := r.st.Batches(r.ctx, mursync.BatchFilter{Clients: []string{r.client}, Status: mursync.Failed})
	if err != nil || len(batches) != 1 || batches[0].Code != 1004 || batches[0].Failure != mursync.FailRefused {
		t.Fatalf("failed batches %+v, %v", batches, err)
	}
	sum, err = r.run(mursync.ByRetry, mursync.Selection{BatchID: batches[0].BatchID})
	if err != nil || sum.Complete() != nil || sum.Synced != sum.Aggregates {
		t.Fatalf("retry of the batch: %+v, %v", sum, err)
	}
	b, err := r.st.Batches(r.ctx, mursync.BatchFilter{JobID: sum.JobID})
	if err != nil || len(b) != 1 || b[0].ResendOf != batches[0].BatchID {
		t.Fatalf("resend batch %+v, %v", b, err)
	}
	r.checkTotals(300)
}

// The core stores a batch and the connection drops before the answer:
// the call is tried again with the same ids, and the core replaces what
// it has instead of billing it twice.
func TestDroppedAfterStore(t *testing.T) {
	r := newRig(t)
	r.set(settings.MURSyncBatchSize, "40")
	r.seed(1200, 7)
	r.faults(fakecore.Faults{Drop: fakecore.Trigger{Next: 2}})
	sum, err := r.run(mursync.ByHand, mursync.Selection{})
	if err != nil || sum.Complete() != nil {
		t.Fatal(err, sum.Complete())
	}
	st := r.core.Stats()
	if st.Dropped != 2 || st.RecordsReplaced == 0 {
		t.Fatalf("stats %+v", st)
	}
	r.checkTotals(1200)
}

// Every step of a cycle can be cut short; the next cycle carries on and
// nothing is lost or billed twice.
func TestCrashBetweenSteps(t *testing.T) {
	r := newRig(t)
	r.set(settings.MURSyncBatchSize, "30")
	r.seed(900, 8)

	// After the records and batches are committed, before the broker has
	// them.
	r.broker.before = func() error { return errors.New("broker down") }
	if _, err := r.run(mursync.BySchedule, mursync.Selection{}); err == nil {
		t.Fatal("a cycle whose publish failed reported no error")
	}
	if c := r.counts(); c["batched"] != 900 {
		t.Fatalf("counts after a failed publish %v", c)
	}
	r.broker.before = nil
	// After the broker has them, before they are marked published: the
	// next cycle publishes them again, and the sync service does not
	// send a batch it has answered.
	r.broker.hold = true
	r.broker.after = func() error { return errors.New("acknowledgement lost") }
	if _, err := r.run(mursync.BySchedule, mursync.Selection{}); err == nil {
		t.Fatal("a cycle whose publish acknowledgement was lost reported no error")
	}
	r.broker.after = nil
	ready, err := r.st.ReadyBatches(r.ctx, r.client)
	if err != nil || len(ready) == 0 {
		t.Fatalf("%d batches left ready, %v", len(ready), err)
	}
	n := len(ready)
	r.answerWait = -1
	sum, err := r.run(mursync.BySchedule, mursync.Selection{})
	r.answerWait = 0
	if err != nil || sum.Batches != n {
		t.Fatalf("the %d batches left ready were not published again: %+v, %v", n, sum, err)
	}
	r.broker.release() // each batch twice now, one after the other
	r.broker.wait()
	if calls := r.core.Stats().Calls; calls != int64(n) {
		t.Fatalf("%d calls for %d batches", calls, n)
	}
	redelivered := 0
	for _, res := range r.broker.results {
		if res.Redelivered {
			redelivered++
		}
	}
	if redelivered != n || len(r.broker.results) != 2*n {
		t.Fatalf("%d results, %d of them redelivered", len(r.broker.results), redelivered)
	}
	r.checkTotals(900)

	// Between the call and the marking: the core stored the batch, the
	// sync service ended before it marked it. The batch comes again and
	// is sent again with the same ids.
	r.seed(200, 9)
	r.broker.before = func() error { return errors.New("hold") }
	_, _ = r.run(mursync.BySchedule, mursync.Selection{})
	r.broker.before = nil
	ready, err = r.st.ReadyBatches(r.ctx, r.client)
	if err != nil || len(ready) == 0 {
		t.Fatalf("ready batches %d, %v", len(ready), err)
	}
	r.faults(fakecore.Faults{Slow: fakecore.SlowFault{Trigger: fakecore.Trigger{Next: 1}, Delay: fakecore.Duration(5 * time.Second)}})
	ctx, cancel := context.WithCancel(r.ctx)
	stored := r.core.Stats().RecordsStored
	go func() {
		for r.core.Stats().RecordsStored == stored {
			time.Sleep(5 * time.Millisecond)
		}
		cancel() // the process ends while the answer is on its way
	}()
	if _, err := r.sender.Handle(ctx, ready[0]); err == nil {
		t.Fatal("a call cut short was marked")
	}
	var status string
	if err := r.db.Pool().QueryRow(r.ctx, `SELECT status FROM sync_batches WHERE batch_id = $1`, ready[0].BatchID).Scan(&status); err != nil || status != "sending" {
		t.Fatalf("batch cut short: %s, %v", status, err)
	}
	r.faults(fakecore.Faults{})
	sum, err = r.run(mursync.BySchedule, mursync.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	// The cut batch is still on the topic: deliver it again.
	res, err := r.sender.Handle(r.ctx, ready[0])
	if err != nil || res.Status != mursync.Done || res.Attempts < 2 {
		t.Fatalf("redelivered batch: %+v, %v", res, err)
	}
	r.checkTotals(1100)
	if r.core.Stats().RecordsReplaced == 0 {
		t.Fatal("the resent batch replaced nothing at the core")
	}
}

func TestBatchSizeChangeNextCycle(t *testing.T) {
	r := newRig(t)
	r.set(settings.MURSyncAggregate, "false")
	r.set(settings.MURSyncBatchSize, "7")
	r.seed(70, 10)
	sum, err := r.run(mursync.BySchedule, mursync.Selection{})
	if err != nil || sum.Batches != 10 {
		t.Fatalf("%+v, %v", sum, err)
	}
	r.set(settings.MURSyncBatchSize, "20")
	r.seed(70, 11)
	sum, err = r.run(mursync.BySchedule, mursync.Selection{})
	if err != nil || sum.Batches != 4 {
		t.Fatalf("after the change: %+v, %v", sum, err)
	}
	b, err := r.st.Batches(r.ctx, mursync.BatchFilter{JobID: sum.JobID})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range b {
		if x.Records > 20 {
			t.Fatalf("batch of %d records after batch_size 20", x.Records)
		}
	}
	r.checkTotals(140)
}

// Two replicas start a cycle for the same client at once: one runs it,
// the other is told it is busy and does nothing.
func TestTwoReplicas(t *testing.T) {
	r := newRig(t)
	r.set(settings.MURSyncBatchSize, "100")
	r.seed(2000, 12)
	// Slow answers keep the first cycle running while the second starts.
	r.faults(fakecore.Faults{Slow: fakecore.SlowFault{Trigger: fakecore.Trigger{Fraction: 1}, Delay: fakecore.Duration(300 * time.Millisecond)}})
	db2 := pgtest.Store(t)
	replicas := []*mursync.Ops{r.newOps(syncstore.New(r.db), "replica:1"), r.newOps(syncstore.New(db2), "replica:2")}
	var wg sync.WaitGroup
	sums := make([]mursync.Summary, 2)
	errs := make([]error, 2)
	start := make(chan struct{})
	for i, o := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			sums[i], errs[i] = o.Run(r.ctx, mursync.Request{Client: r.client, Trigger: mursync.BySchedule, AnswerWait: 30 * time.Second})
		}()
	}
	close(start)
	wg.Wait()
	busy, ran := 0, 0
	for i := range errs {
		switch {
		case errors.Is(errs[i], mursync.ErrBusy):
			busy++
		case errs[i] == nil:
			ran++
			if sums[i].MURs != 2000 {
				t.Fatalf("the cycle that ran sent %d MURs", sums[i].MURs)
			}
		default:
			t.Fatal(errs[i])
		}
	}
	if busy != 1 || ran != 1 {
		t.Fatalf("%d cycles ran, %d were busy", ran, busy)
	}
	jobs, _ := r.st.Jobs(r.ctx, mursync.JobFilter{Clients: []string{r.client}})
	if len(jobs) != 1 {
		t.Fatalf("%d jobs recorded", len(jobs))
	}
	r.faults(fakecore.Faults{})
	r.checkTotals(2000)

	// Waiting for the lock instead, the second runs after the first.
	r.seed(100, 13)
	unlock, err := r.st.Lock(r.ctx, r.client, false)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := replicas[1].Run(r.ctx, mursync.Request{Client: r.client, Trigger: mursync.ByHand, Wait: true, AnswerWait: 30 * time.Second})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("ran while the lock was held: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.checkTotals(2100)
}

// A job left running by a process that died is ended by the next cycle.
func TestInterruptedJob(t *testing.T) {
	r := newRig(t)
	id := store.NewID()
	if err := r.st.StartJob(r.ctx, mursync.Job{ID: id, Client: r.client, Trigger: mursync.BySchedule, Owner: "gone:1",
		StartedAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	r.seed(10, 14)
	if _, err := r.run(mursync.BySchedule, mursync.Selection{}); err != nil {
		t.Fatal(err)
	}
	jobs, _ := r.st.Jobs(r.ctx, mursync.JobFilter{Clients: []string{r.client}})
	if len(jobs) != 2 || jobs[1].ID != id || jobs[1].Status != mursync.JobFailed || jobs[1].Error == "" || jobs[0].Status != mursync.JobDone {
		t.Fatalf("jobs %+v", jobs)
	}
	r.checkTotals(10)
}

func TestClients(t *testing.T) {
	r := newRig(t)
	r.seed(5, 15)
	clients, err := r.st.Clients(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range clients {
		found = found || c == r.client
	}
	if !found {
		t.Fatalf("clients %v lack %s", clients, r.client)
	}
	bl, err := r.st.Backlogs(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bl {
		if b.Client == r.client && !b.Unsynced {
			t.Fatalf("backlog %+v", b)
		}
	}
	if _, err := r.run(mursync.BySchedule, mursync.Selection{}); err != nil {
		t.Fatal(err)
	}
	clients, _ = r.st.Clients(r.ctx)
	for _, c := range clients {
		if c == r.client {
			t.Fatal("a client with everything synced still has work")
		}
	}
}

// A batch too large for one message travels without its records; the
// sync service reads them from the database.
func TestBatchTooLargeForOneMessage(t *testing.T) {
	r := newRig(t)
	r.set(settings.MURSyncAggregate, "false")
	r.set(settings.MURSyncBatchSize, "5000")
	r.seed(4000, 16)
	sum, err := r.run(mursync.BySchedule, mursync.Selection{})
	if err != nil || sum.Complete() != nil || sum.Batches != 1 || sum.Synced != 4000 {
		t.Fatalf("%+v, %v", sum, err)
	}
	r.checkTotals(4000)
}

// A backlog larger than a chunk is read a chunk at a time while the
// batches of the earlier chunks are still on their way (their MURs are
// still unsynced): no MUR goes into two records.
func TestChunksWhileAnswersPending(t *testing.T) {
	r := newRig(t)
	r.set(settings.MURSyncBatchSize, "10")
	r.seed(3000, 17)
	r.ops.Chunk = 250
	r.faults(fakecore.Faults{Slow: fakecore.SlowFault{Trigger: fakecore.Trigger{Fraction: 1}, Delay: fakecore.Duration(30 * time.Millisecond)}})
	sum, err := r.run(mursync.BySchedule, mursync.Selection{})
	if err != nil || sum.Complete() != nil || sum.MURs != 3000 {
		t.Fatalf("%+v, %v", sum, err)
	}
	var inTwo int
	if err := r.db.Pool().QueryRow(r.ctx, `SELECT count(*) FROM (SELECT unnest(mur_ids) m FROM sync_aggregates WHERE client = $1) x
		GROUP BY m HAVING count(*) > 1`, r.client).Scan(&inTwo); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatal(err)
	}
	if inTwo != 0 {
		t.Fatalf("%d MURs are in two records", inTwo)
	}
	r.checkTotals(3000)
}
