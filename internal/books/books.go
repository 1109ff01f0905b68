// Package books checks that Vivace's books balance: that every record
// read ended in exactly one place and that the cumulative tables rating
// keeps agree with the MURs it wrote. It holds the invariants, what a
// discrepancy means and the report `vivace check` prints; the SQL that
// finds the discrepancies, set-based so that it runs over the whole
// history, is an adapter's (internal/store/checkstore) behind the Ledger
// port.
package books

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cockroachdb/apd/v3"

	"vivace.dev/vivace/internal/money"
	"vivace.dev/vivace/internal/rating"
)

// Invariant names one rule the books keep. The names are stable: they
// appear in the report and in its JSON.
type Invariant string

// The invariants, in the order they are checked and reported.
const (
	// FileBalance: a done file's records (with the extra parts of its
	// split lines) equal its MURs + exceptions + filtered records.
	FileBalance Invariant = "file_balance"
	// FileRows: a file's counts equal the rows that carry its id — MURs,
	// exceptions but those that became MURs, filtered records, the extra
	// parts of its split lines — and no such row names a file that does
	// not exist.
	FileRows Invariant = "file_rows"
	// OneMURPerRecord: one MUR per client and record id.
	OneMURPerRecord Invariant = "one_mur_per_record"
	// Counters: every usage counter equals the sum of its MURs'
	// quantities per client, account, usage type and UTC month.
	Counters Invariant = "counters"
	// Allowances: every free-unit allowance's use equals the free units
	// its MURs' rate details took, per client, account, discount and UTC
	// month.
	Allowances Invariant = "allowances"
	// Synced: every MUR marked synced has an aggregated record the core
	// acknowledged (status synced, same client, in a batch that is done),
	// and every acknowledged aggregated record holds exactly the synced
	// MURs that name it, with their units and amounts summed.
	Synced Invariant = "synced"
)

// Invariants lists every invariant in report order.
var Invariants = []Invariant{FileBalance, FileRows, OneMURPerRecord, Counters, Allowances, Synced}

// Describe says in a sentence what an invariant holds.
func (i Invariant) Describe() string {
	switch i {
	case FileBalance:
		return "every done file's records = MURs + exceptions + filtered"
	case FileRows:
		return "every file's counts = the MURs, exceptions, filtered records and split parts stored for it"
	case OneMURPerRecord:
		return "one MUR per client and record id"
	case Counters:
		return "every usage counter = the sum of its MURs' quantities (client, account, usage type, month)"
	case Allowances:
		return "every allowance's use = the free units its MURs took (client, account, discount, month)"
	case Synced:
		return "every synced MUR is in an aggregated record the core acknowledged, and each such record sums its MURs"
	}
	return string(i)
}

// Finding is one discrepancy: what does not hold, for what, and the two
// sides that disagree.
type Finding struct {
	Invariant Invariant `json:"invariant"`
	Client    string    `json:"client,omitempty"`
	// Subject names the row at fault: "file <id> (name)", "counter
	// account A usage type U month 2026-03", "MUR <id> record R", …
	Subject string `json:"subject"`
	// Want is what the books say it should be, Got what is there.
	Want string `json:"want"`
	Got  string `json:"got"`
}

func (f Finding) String() string {
	var b strings.Builder
	if f.Client != "" {
		fmt.Fprintf(&b, "client %s: ", f.Client)
	}
	fmt.Fprintf(&b, "%s: want %s, got %s", f.Subject, f.Want, f.Got)
	return b.String()
}

// FileTotals is a file's row against what is stored for it. A nil
// pointer count is a side that does not exist (no files row for rows that
// name the file; records not yet known).
type FileTotals struct {
	FileID, Client, Name, Status string
	// Exists is false for rows that name a file the registry does not have.
	Exists bool
	// Records is nil until the reader has counted the file.
	Records                                *int64
	SplitExtra, MURs, Exceptions, Filtered int64
	// What the other tables hold for the file.
	RowMURs, RowExceptions, RowFiltered, RowSplitExtra int64
}

// LedgerRow is a cumulative row (a usage counter or an allowance) against
// the sum of its MURs. Stored is empty when there is no row but MURs
// that should have made one; Summed is empty when no MUR counts towards
// a row that is not zero.
type LedgerRow struct {
	Client, AccountID string
	// Item is the usage type of a counter, the discount id of an
	// allowance.
	Item           string
	Month          rating.Month
	Stored, Summed string
}

// Duplicate is a client's record id held by more than one MUR.
type Duplicate struct {
	Client, RecordID string
	MURs             int64
	// Files names the files they came from (a few at most).
	Files []string
}

// SyncedGroup is the MURs marked synced of one client and aggregated
// record against that record: Exists is false when there is no such
// record (AggregateID empty: the MURs name none); MURs is 0 for an
// acknowledged record that no synced MUR names.
type SyncedGroup struct {
	Client, AggregateID string
	// The synced MURs: how many, their quantities and net amounts summed,
	// one of their ids.
	MURs            int64
	Units, Amount   string
	ExampleMUR      string
	Exists          bool
	AggregateClient string
	// The record's status and its batch's.
	Status, BatchStatus string
	// What the record told the core.
	SentMURs              int64
	SentUnits, SentAmount string
}

// Scope is what a check went over, for the report.
type Scope struct {
	Files, MURs, Counters, Allowances, Aggregates int64
}

// Ledger is what the check needs from storage: the rows where the books
// may disagree, streamed. Each method may pass rows that do agree (the
// check decides); it must pass every row that does not. The whole check
// runs in one snapshot (Snapshot), so rows that move meanwhile are seen
// as they were together.
type Ledger interface {
	// Snapshot runs fn with a Ledger whose reads all see one snapshot.
	Snapshot(ctx context.Context, fn func(Ledger) error) error
	Scope(ctx context.Context, client string) (Scope, error)
	Files(ctx context.Context, client string, fn func(FileTotals) error) error
	Duplicates(ctx context.Context, client string, fn func(Duplicate) error) error
	Counters(ctx context.Context, client string, fn func(LedgerRow) error) error
	Allowances(ctx context.Context, client string, fn func(LedgerRow) error) error
	Synced(ctx context.Context, client string, fn func(SyncedGroup) error) error
}

// Options bound a check.
type Options struct {
	// Client limits the check to one client; empty checks every client.
	Client string
	// Samples is how many findings of each invariant the report lists
	// (all of them are counted); 0 means 20.
	Samples int
	// Now stamps the report; nil means time.Now.
	Now func() time.Time
}

// Result is one invariant's outcome: how many findings, and the first of
// them.
type Result struct {
	Invariant   Invariant `json:"invariant"`
	Description string    `json:"description"`
	Findings    int64     `json:"findings"`
	Samples     []Finding `json:"samples,omitempty"`
}

// Report is what a check found.
type Report struct {
	Client   string        `json:"client,omitempty"`
	At       time.Time     `json:"at"`
	Took     time.Duration `json:"-"`
	TookText string        `json:"took"`
	Scope    Scope         `json:"scope"`
	Results  []Result      `json:"results"`
}

// Clean reports whether no invariant has a finding.
func (r *Report) Clean() bool { return r.Findings() == 0 }

// Findings is the number of findings over every invariant.
func (r *Report) Findings() int64 {
	var n int64
	for _, res := range r.Results {
		n += res.Findings
	}
	return n
}

// collector counts an invariant's findings and keeps the first few.
type collector struct {
	results map[Invariant]*Result
	samples int
}

func (c *collector) add(f Finding) {
	r := c.results[f.Invariant]
	r.Findings++
	if len(r.Samples) < c.samples {
		r.Samples = append(r.Samples, f)
	}
}

// Check runs every invariant over the books of l and reports what it
// found. An error means the check could not run to the end; findings are
// not errors.
func Check(ctx context.Context, l Ledger, opt Options) (Report, error) {
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	start := now()
	c := &collector{results: map[Invariant]*Result{}, samples: opt.Samples}
	if c.samples <= 0 {
		c.samples = 20
	}
	rep := Report{Client: opt.Client, At: start.UTC()}
	for _, inv := range Invariants {
		c.results[inv] = &Result{Invariant: inv, Description: inv.Describe()}
	}
	client := opt.Client
	err := l.Snapshot(ctx, func(l Ledger) error {
		var err error
		if rep.Scope, err = l.Scope(ctx, client); err != nil {
			return fmt.Errorf("scope: %w", err)
		}
		if err := l.Files(ctx, client, func(f FileTotals) error {
			for _, fd := range CheckFile(f) {
				c.add(fd)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("files: %w", err)
		}
		if err := l.Duplicates(ctx, client, func(d Duplicate) error {
			if fd, ok := CheckDuplicate(d); ok {
				c.add(fd)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("record ids: %w", err)
		}
		for _, lt := range []struct {
			inv Invariant
			run func(context.Context, string, func(LedgerRow) error) error
		}{{Counters, l.Counters}, {Allowances, l.Allowances}} {
			if err := lt.run(ctx, client, func(r LedgerRow) error {
				if fd, ok := CheckLedgerRow(lt.inv, r); ok {
					c.add(fd)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("%s: %w", lt.inv, err)
			}
		}
		if err := l.Synced(ctx, client, func(g SyncedGroup) error {
			for _, fd := range CheckSynced(g) {
				c.add(fd)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("synced MURs: %w", err)
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	for _, inv := range Invariants {
		rep.Results = append(rep.Results, *c.results[inv])
	}
	rep.Took = now().Sub(start)
	rep.TookText = rep.Took.Round(time.Millisecond).String()
	return rep, nil
}

// CheckFile returns what is wrong with a file's counts.
func CheckFile(f FileTotals) []Finding {
	subject := "file " + f.FileID
	if f.Name != "" {
		subject += " (" + f.Name + ")"
	}
	if !f.Exists {
		return []Finding{{Invariant: FileRows, Client: f.Client, Subject: subject,
			Want: "a files row for the stored records",
			Got: fmt.Sprintf("none, but %d MURs, %d exceptions, %d filtered records and %d split parts name it",
				f.RowMURs, f.RowExceptions, f.RowFiltered, f.RowSplitExtra)}}
	}
	var out []Finding
	if f.Status == "done" {
		outcomes := f.MURs + f.Exceptions + f.Filtered
		switch {
		case f.Records == nil:
			out = append(out, Finding{Invariant: FileBalance, Client: f.Client, Subject: subject,
				Want: "its number of records", Got: "done without one"})
		case *f.Records+f.SplitExtra != outcomes:
			out = append(out, Finding{Invariant: FileBalance, Client: f.Client, Subject: subject,
				Want: fmt.Sprintf("%d records (%d read + %d split parts)", *f.Records+f.SplitExtra, *f.Records, f.SplitExtra),
				Got:  fmt.Sprintf("%d (%d MURs + %d exceptions + %d filtered)", outcomes, f.MURs, f.Exceptions, f.Filtered)})
		}
	}
	for _, c := range []struct {
		what          string
		counted, rows int64
	}{
		{"MURs", f.MURs, f.RowMURs},
		{"exceptions", f.Exceptions, f.RowExceptions},
		{"filtered records", f.Filtered, f.RowFiltered},
		{"split parts", f.SplitExtra, f.RowSplitExtra},
	} {
		if c.counted != c.rows {
			out = append(out, Finding{Invariant: FileRows, Client: f.Client, Subject: subject,
				Want: fmt.Sprintf("%d %s stored, as its count says", c.counted, c.what),
				Got:  fmt.Sprintf("%d", c.rows)})
		}
	}
	return out
}

// CheckDuplicate returns the finding of a record id held more than once.
func CheckDuplicate(d Duplicate) (Finding, bool) {
	if d.MURs <= 1 {
		return Finding{}, false
	}
	got := fmt.Sprintf("%d MURs", d.MURs)
	if len(d.Files) > 0 {
		got += " from files " + strings.Join(d.Files, ", ")
	}
	return Finding{Invariant: OneMURPerRecord, Client: d.Client, Subject: fmt.Sprintf("record %q", d.RecordID),
		Want: "1 MUR", Got: got}, true
}

// CheckLedgerRow compares a counter or an allowance with the sum of its
// MURs, as decimals: 5 and 5.000 agree. A missing side counts as zero, so
// a row created at zero by a batch whose records all failed agrees with
// no MURs.
func CheckLedgerRow(inv Invariant, r LedgerRow) (Finding, bool) {
	stored, sok := decimal(r.Stored)
	summed, mok := decimal(r.Summed)
	if sok && mok && stored.Cmp(&summed) == 0 {
		return Finding{}, false
	}
	what := "counter"
	item := "usage type " + r.Item
	if inv == Allowances {
		what, item = "allowance", "discount "+r.Item
	}
	want := "0 (no MUR)"
	if r.Summed != "" {
		want = r.Summed + " (the sum of its MURs)"
	}
	got := r.Stored
	if r.Stored == "" {
		got = "no row"
	}
	if !sok {
		got = fmt.Sprintf("%q, not a number", r.Stored)
	}
	if !mok {
		want = fmt.Sprintf("%q, not a number", r.Summed)
	}
	return Finding{Invariant: inv, Client: r.Client,
		Subject: fmt.Sprintf("%s of account %s, %s, month %s", what, r.AccountID, item, r.Month),
		Want:    want, Got: got}, true
}

// CheckSynced returns what is wrong with a group of synced MURs and
// their aggregated record: synced without a record the core
// acknowledged, or a record whose MURs, units or amount are not what it
// told the core.
func CheckSynced(g SyncedGroup) []Finding {
	murs := fmt.Sprintf("%d synced MURs", g.MURs)
	if g.MURs == 1 {
		murs = "1 synced MUR"
	}
	if g.ExampleMUR != "" {
		murs += " (" + g.ExampleMUR + " among them)"
	}
	f := Finding{Invariant: Synced, Client: g.Client, Want: "an aggregated record the core acknowledged"}
	switch {
	case g.AggregateID == "":
		f.Subject, f.Got = murs, "synced without an aggregated record"
		return []Finding{f}
	case !g.Exists:
		f.Subject, f.Got = murs, "aggregated record "+g.AggregateID+" does not exist"
		return []Finding{f}
	}
	subject := "aggregated record " + g.AggregateID
	switch {
	case g.MURs > 0 && g.AggregateClient != g.Client:
		f.Subject, f.Got = murs, fmt.Sprintf("%s of client %s", subject, g.AggregateClient)
	case g.MURs > 0 && g.Status != "synced":
		f.Subject, f.Got = murs, fmt.Sprintf("%s is %s", subject, g.Status)
	case g.BatchStatus != "done":
		bs := g.BatchStatus
		if bs == "" {
			bs = "missing"
		}
		f.Subject, f.Got = murs, fmt.Sprintf("%s's batch is %s", subject, bs)
	default:
		f = Finding{}
	}
	if f.Subject != "" {
		return []Finding{f}
	}
	var out []Finding
	if g.SentMURs != g.MURs {
		out = append(out, Finding{Invariant: Synced, Client: g.Client, Subject: subject,
			Want: fmt.Sprintf("%d synced MURs, as the core was told", g.SentMURs), Got: fmt.Sprintf("%d", g.MURs)})
	}
	for _, s := range []struct{ what, sent, rows string }{{"units", g.SentUnits, g.Units}, {"amount", g.SentAmount, g.Amount}} {
		x, xok := decimal(s.sent)
		y, yok := decimal(s.rows)
		if !xok || !yok || x.Cmp(&y) != 0 {
			out = append(out, Finding{Invariant: Synced, Client: g.Client, Subject: subject,
				Want: fmt.Sprintf("%s %s, as the core was told", s.what, s.sent),
				Got:  fmt.Sprintf("%s summed over its MURs", s.rows)})
		}
	}
	return out
}

// decimal reads a stored decimal; empty is zero.
func decimal(s string) (apd.Decimal, bool) {
	var d apd.Decimal
	if s == "" {
		return d, true
	}
	if err := money.ParseInto(&d, s); err != nil {
		return d, false
	}
	return d, true
}

// WriteText writes the report for a person: the scope, then each
// invariant with OK or its number of findings and the first of them.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	scope := "every client"
	if r.Client != "" {
		scope = "client " + r.Client
	}
	fmt.Fprintf(&b, "vivace check: %s at %s\n", scope, r.At.Format(time.RFC3339))
	fmt.Fprintf(&b, "checked %d files, %d MURs, %d counters, %d allowances, %d acknowledged aggregated records in %s\n",
		r.Scope.Files, r.Scope.MURs, r.Scope.Counters, r.Scope.Allowances, r.Scope.Aggregates, r.TookText)
	for _, res := range r.Results {
		if res.Findings == 0 {
			fmt.Fprintf(&b, "OK    %-18s %s\n", res.Invariant, res.Description)
			continue
		}
		fmt.Fprintf(&b, "FAIL  %-18s %s: %d finding(s)\n", res.Invariant, res.Description, res.Findings)
		for _, f := range res.Samples {
			fmt.Fprintf(&b, "      - %s\n", f)
		}
		if n := res.Findings - int64(len(res.Samples)); n > 0 {
			fmt.Fprintf(&b, "      … and %d more\n", n)
		}
	}
	if r.Clean() {
		b.WriteString("the books balance\n")
	} else {
		fmt.Fprintf(&b, "%d finding(s): the books do not balance\n", r.Findings())
	}
	_, err := io.WriteString(w, b.String())
	return err
}
