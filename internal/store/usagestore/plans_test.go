package usagestore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/internal/exceptions"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/murs"
	"vivace.dev/vivace/internal/pgtest"
	"vivace.dev/vivace/internal/ratestage"
	"vivace.dev/vivace/internal/rating"
	"vivace.dev/vivace/internal/store"
	"vivace.dev/vivace/internal/store/filestore"
	"vivace.dev/vivace/internal/store/filestore/filestoretest"
	"vivace.dev/vivace/internal/store/usagestore"
)

// planWatch collects the plans auto_explain sends of every statement the
// pool runs (as notices, in JSON).
type planWatch struct {
	mu    sync.Mutex
	plans []string
}

func (w *planWatch) configure(cfg *pgxpool.Config) {
	cfg.ConnConfig.RuntimeParams["session_preload_libraries"] = "auto_explain"
	cfg.ConnConfig.RuntimeParams["auto_explain.log_min_duration"] = "0"
	cfg.ConnConfig.RuntimeParams["auto_explain.log_level"] = "notice"
	cfg.ConnConfig.RuntimeParams["auto_explain.log_format"] = "json"
	cfg.ConnConfig.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if i := strings.Index(n.Message, "{"); strings.HasPrefix(n.Message, "duration:") && i > 0 {
			w.mu.Lock()
			w.plans = append(w.plans, n.Message[i:])
			w.mu.Unlock()
		}
	}
}

func (w *planWatch) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.plans
	w.plans = nil
	return p
}

// planNode is a node of an EXPLAIN (FORMAT JSON) plan.
type planNode struct {
	Type     string     `json:"Node Type"`
	Relation string     `json:"Relation Name"`
	Index    string     `json:"Index Name"`
	Plans    []planNode `json:"Plans"`
}

// scans lists what a plan reads the big tables with: "Seq Scan on x",
// "Index Scan exceptions_position", "Hash Join", ….
func (n planNode) walk(fn func(planNode)) {
	fn(n)
	for _, c := range n.Plans {
		c.walk(fn)
	}
}

// probeIndexes are the only ways the rating transaction may read each
// table: one probe per key of a unique key, or of the index made for the
// statement.
var probeIndexes = map[string]map[string]bool{
	"exceptions":       {"exceptions_position": true, "exceptions_open_record": true, "exceptions_pkey": true},
	"murs":             {"murs_client_record": true},
	"usage_counters":   {"usage_counters_pkey": true},
	"allowance_usage":  {"allowance_usage_pkey": true},
	"files":            {"files_pkey": true},
	"split_lines":      {"split_lines_pkey": true},
	"filtered_records": {},
	// The TMF635 triggers: a posted usage settled by its (file, line), and
	// whether any hub listens at all.
	"api_usage": {"api_usage_open": true},
	"tmf_hubs":  {"tmf_hubs_pkey": true},
}

func allowedIndex(name string) bool {
	for _, ix := range probeIndexes {
		if ix[name] {
			return true
		}
	}
	return false
}

// TestRatePlansProbe runs the statements of a rating transaction and of
// the exceptions stage against tables far larger than the batch and never
// analysed (autovacuum is not assumed), with auto_explain, and fails on
// any plan that scans a table, hashes or merges it, or reads it through
// an index other than the statement's probe: on 200,000 open exceptions
// of one client, a resolve that read the client's exceptions for every
// key made the rate stage collapse.
func TestRatePlansProbe(t *testing.T) {
	if testing.Short() {
		t.Skip("fills tables with 200,000 rows")
	}
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	base, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	fs := filestore.New(base)
	client := "big-" + ids.New()[24:]
	old, err := fs.RegisterFile(ctx, filestoretest.File(client, "plans-old"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 200_000
	// 200,000 open exceptions of one client (every record id distinct),
	// 50,000 MURs and 20,000 counters of the same client, none analysed.
	for _, q := range []string{
		`INSERT INTO exceptions (exception_id, client, file_id, line, part, record_id, stage, code, message, record)
			SELECT gen_random_uuid(), $1, $2::uuid, i, 0, 'old-' || i, 'rate', 'UNKNOWN_ACCOUNT', 'no such account', '{}'
			FROM generate_series(1, $3::int) AS i`,
		`INSERT INTO murs (mur_id, client, record_id, file_id, line, part, account_id, usage_type, quantity, usage_time,
				currency, gross_amount, discount_amount, net_amount, rate_detail)
			SELECT gen_random_uuid(), $1, 'mur-' || i, $2::uuid, i, 0, 'A' || (i % 1000), 'U', 1, now(), 'USD', 1, 0, 1, '{}'
			FROM generate_series(1, $3::int / 4) AS i`,
		`INSERT INTO usage_counters (client, account_id, usage_type, month, quantity)
			SELECT $1, 'A' || i, 'U', 24315, 1 FROM generate_series(1, $3::int / 10) AS i WHERE $2::uuid IS NOT NULL`,
	} {
		start := time.Now()
		if _, err := base.Pool().Exec(ctx, q, client, old.FileID, n); err != nil {
			t.Fatal(err)
		}
		t.Logf("%.40s…: %v", q, time.Since(start))
	}
	var analysed bool
	if err := base.Pool().QueryRow(ctx, `SELECT coalesce(last_analyze, last_autoanalyze) IS NOT NULL
		FROM pg_stat_user_tables WHERE relname = 'exceptions'`).Scan(&analysed); err != nil || analysed {
		t.Fatalf("exceptions analysed (%v, %v): the test must run on a table without statistics", analysed, err)
	}

	w := &planWatch{}
	st, err := store.OpenWith(ctx, dsn, w.configure)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	us := usagestore.New(st)
	f, err := fs.RegisterFile(ctx, filestoretest.File(client, "plans-new"))
	if err != nil {
		t.Fatal(err)
	}
	// A batch as the rate stage writes it: 1,000 MURs of which some take
	// the record ids of old exceptions, some come from sources that have an
	// exception (reprocessed), and exceptions of its own.
	const batch = 1000
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var ms []murs.MUR
	var recKeys []ratestage.RecordKey
	var counters []ratestage.CounterKey
	for i := range batch {
		m := murs.MUR{Client: client, RecordID: fmt.Sprintf("new-%d", i), FileID: f.FileID, Line: int64(i + 1),
			AccountID: fmt.Sprintf("A%d", i), UsageType: "U", Quantity: "1", UsageTime: at, Currency: "USD",
			GrossAmount: "1", DiscountAmount: "0", NetAmount: "1", RateDetail: json.RawMessage(`{}`)}
		switch i % 3 {
		case 1: // a corrected copy of an old exception's record
			m.RecordID = fmt.Sprintf("old-%d", i*100)
		case 2: // the old exception's own source, reprocessed
			m.FileID, m.Line, m.RecordID = old.FileID, int64(i*100+1), fmt.Sprintf("old-%d", i*100+1)
		}
		ms = append(ms, m)
		recKeys = append(recKeys, ratestage.RecordKey{Client: client, RecordID: m.RecordID})
		counters = append(counters, ratestage.CounterKey{Client: client, AccountID: m.AccountID, UsageType: "U", Month: rating.Month(24315)})
	}
	var exs []exceptions.Exception
	for i := range 200 {
		exs = append(exs, exceptions.Exception{Client: client, FileID: f.FileID, Line: int64(batch + 1 + i), RecordID: fmt.Sprintf("bad-%d", i),
			Stage: "rate", Code: codes.UnknownAccount, Message: "no such account", Record: json.RawMessage(`{}`)})
	}
	w.take()
	err = us.Rate(ctx, func(tx ratestage.Tx) error {
		if _, err := tx.ExistingMURs(ctx, recKeys); err != nil {
			return err
		}
		values, err := tx.LoadCounters(ctx, counters)
		if err != nil {
			return err
		}
		for k := range values {
			values[k] = "2"
		}
		if err := tx.SaveCounters(ctx, values); err != nil {
			return err
		}
		allow := []ratestage.AllowanceKey{{Client: client, AccountID: "A1", DiscountID: "D", Month: rating.Month(24315)}}
		if _, err := tx.LoadAllowances(ctx, allow); err != nil {
			return err
		}
		if err := tx.SaveAllowances(ctx, map[ratestage.AllowanceKey]string{allow[0]: "1"}); err != nil {
			return err
		}
		if err := tx.InsertMURs(ctx, ms); err != nil {
			return err
		}
		return tx.InsertExceptions(ctx, exs)
	})
	if err != nil {
		t.Fatal(err)
	}
	// The exceptions stage's batch, with a filtered record.
	more := []exceptions.Exception{{Client: client, FileID: f.FileID, Line: 5000, RecordID: "m", Stage: "mediate",
		Code: codes.BadQuantity, Message: "bad", Record: json.RawMessage(`{}`)},
		{Client: client, FileID: f.FileID, Line: 5001, Stage: "mediate", Code: codes.Filtered, Message: "test", Record: json.RawMessage(`{}`)}}
	if _, err := us.InsertExceptions(ctx, more); err != nil {
		t.Fatal(err)
	}
	plans := w.take()

	sawResolve, sawSupersede := false, false
	for _, p := range plans {
		var doc struct {
			Query string   `json:"Query Text"`
			Plan  planNode `json:"Plan"`
		}
		if err := json.Unmarshal([]byte(p), &doc); err != nil {
			t.Fatalf("plan %s: %v", p, err)
		}
		q := strings.Join(strings.Fields(doc.Query), " ")
		sawResolve = sawResolve || strings.Contains(q, "resolution = 'rated'")
		sawSupersede = sawSupersede || strings.Contains(q, "resolution = 'superseded'")
		doc.Plan.walk(func(n planNode) {
			switch {
			case n.Type == "Hash Join" || n.Type == "Merge Join" || n.Type == "Materialize":
				t.Errorf("%s in the plan of %.160s", n.Type, q)
			case n.Type == "Bitmap Index Scan":
				if !allowedIndex(n.Index) {
					t.Errorf("%s through %s in the plan of %.160s", n.Type, n.Index, q)
				}
			case n.Relation == "" || n.Type == "ModifyTable" || n.Type == "Bitmap Heap Scan":
				// not a table read, or one whose index is its child's
			case n.Index == "":
				t.Errorf("%s on %s in the plan of %.160s", n.Type, n.Relation, q)
			case !probeIndexes[n.Relation][n.Index]:
				t.Errorf("%s on %s through %s in the plan of %.160s", n.Type, n.Relation, n.Index, q)
			}
		})
	}
	if !sawResolve || !sawSupersede {
		t.Fatalf("the resolve (%v) and supersede (%v) statements were not seen among %d plans", sawResolve, sawSupersede, len(plans))
	}
	// And they did their work: a third of the batch resolved its own
	// exception (rated), a third superseded an old one.
	var rated, superseded int
	if err := base.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE resolution = 'rated'), count(*) FILTER (WHERE resolution = 'superseded')
		FROM exceptions WHERE client = $1`, client).Scan(&rated, &superseded); err != nil {
		t.Fatal(err)
	}
	if rated != batch/3 || superseded != batch/3 {
		t.Fatalf("%d rated and %d superseded, want %d each", rated, superseded, batch/3)
	}
}
