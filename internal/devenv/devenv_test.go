package devenv_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"vivace.dev/vivace/internal/devenv"
)

const topic = "usage.raw"

func startBroker(t *testing.T, addr, dir string) *devenv.Broker {
	t.Helper()
	b, err := devenv.StartBroker(context.Background(), devenv.BrokerConfig{Addr: addr, DataDir: dir, Topics: []string{topic, "core.feed"}, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBrokerKeepsDataAcrossRestart: records and committed group offsets
// survive a restart on the same data directory.
func TestBrokerKeepsDataAcrossRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	b := startBroker(t, "127.0.0.1:0", dir)
	addr := b.Addr()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("A1"), Value: fmt.Appendf(nil, "record %d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: topic, Partition: 0, At: 4, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(ctx, "g1", offsets); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// The same port again, as `vivace dev` restarts on its configured one.
	b = startBroker(t, addr, dir)
	defer b.Close()
	cl, err = kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm = kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != 10 {
		t.Fatalf("after restart the topic holds %d records, want 10", total)
	}
	got, err := adm.FetchOffsets(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := got.Lookup(topic, 0); !ok || o.At != 4 {
		t.Fatalf("after restart group g1 offset = %+v (found %v), want 4", o, ok)
	}
}

// TestKcatReadsBroker: a Kafka client that is not ours lists and reads
// the broker's topics.
func TestKcatReadsBroker(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not installed (scripts/install-deps.sh installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := startBroker(t, "127.0.0.1:0", t.TempDir())
	defer b.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 3 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("A1"), Value: fmt.Appendf(nil, "hello %d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.CommandContext(ctx, kcat, "-b", b.Addr(), "-L").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat -L: %v: %s", err, out)
	}
	for _, want := range []string{`topic "usage.raw"`, `topic "core.feed"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kcat -L does not list %s:\n%s", want, out)
		}
	}
	out, err = exec.CommandContext(ctx, kcat, "-b", b.Addr(), "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k %s\n").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat -C: %v: %s", err, out)
	}
	for i := range 3 {
		if want := fmt.Sprintf("A1 hello %d", i); !strings.Contains(string(out), want) {
			t.Errorf("kcat -C output lacks %q:\n%s", want, out)
		}
	}
}

func TestStartPostgresPrivateCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	ctx, pg, dataDir := startPrivateCluster(t)
	dsn, err := devenv.EnsureDatabase(ctx, pg.DSN(), "devenv_test")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var name string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil || name != "devenv_test" {
		t.Fatalf("current_database() = %q, %v", name, err)
	}
	// A second start on the same directory reuses the running server.
	again, err := devenv.StartPostgres(ctx, devenv.PGConfig{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	if again.DSN() != pg.DSN() {
		t.Fatalf("second start: %s, want the running server %s", again.DSN(), pg.DSN())
	}
}

func TestEnsureDatabaseOnSharedServer(t *testing.T) {
	admin := os.Getenv("DATABASE_URL")
	if admin == "" {
		admin = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	ctx := context.Background()
	name := fmt.Sprintf("devenv_%d", time.Now().UnixNano())
	dsn, err := devenv.EnsureDatabase(ctx, admin, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, admin)
		if err == nil {
			_, _ = conn.Exec(ctx, "DROP DATABASE "+name)
			conn.Close(ctx)
		}
	})
	if again, err := devenv.EnsureDatabase(ctx, admin, name); err != nil || again != dsn {
		t.Fatalf("second EnsureDatabase = %q, %v; want %q", again, err, dsn)
	}
}

// TestPrivateClusterSettings: the private cluster runs with
// ServerSettings, and with every commit durable (what exactly-once
// needs).
func TestPrivateClusterSettings(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	ctx, pg, _ := startPrivateCluster(t)
	conn, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	want := map[string][]string{
		"checkpoint_timeout": {"15min"}, "max_wal_size": {"4GB"}, "shared_buffers": {"256MB"},
		"wal_compression": {"lz4", "pglz"},
		"fsync":           {"on"}, "synchronous_commit": {"on"}, "full_page_writes": {"on"},
	}
	for name, ok := range want {
		var v string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(ok, v) {
			t.Errorf("%s = %s, want %s", name, v, strings.Join(ok, " or "))
		}
	}
}

// startPrivateCluster starts a private PostgreSQL cluster in a fresh
// directory (skipping where no server binaries are installed) and stops
// it when the test ends; it returns a context for the test's work, the
// cluster and its data directory.
func startPrivateCluster(t *testing.T) (context.Context, *devenv.Postgres, string) {
	t.Helper()
	base, err := os.MkdirTemp("", "vivace-devenv-pg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	// The server may run as another user, who must reach the directory.
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	dataDir := filepath.Join(base, "pg")
	pg, err := devenv.StartPostgres(ctx, devenv.PGConfig{DataDir: dataDir})
	if err != nil {
		if err == devenv.ErrNoPostgres {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pg.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return ctx, pg, dataDir
}
