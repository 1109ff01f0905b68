package devenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PGConfig configures a private PostgreSQL cluster.
type PGConfig struct {
	DataDir string
	Port    int // 0 picks a free port
	Logger  *slog.Logger
}

// Postgres is a running private cluster.
type Postgres struct {
	bin    string
	dir    string
	port   int
	asUser string // run the server binaries as this user (root cannot)
	log    *slog.Logger
}

// ServerSettings are the settings the private cluster starts with, beyond
// PostgreSQL's defaults: what a stream of MUR batches needs, and none that
// weakens durability. Each batch commits synchronously (fsync,
// synchronous_commit and full_page_writes stay on) before its Kafka
// offsets are committed, which exactly-once depends on. docs/architecture.md
// ("PostgreSQL settings") says what production servers should set.
var ServerSettings = []string{
	// Checkpoints further apart: after each one, the first change to
	// every page writes the whole page to the WAL again, and the MUR
	// tables' pages are all new.
	"checkpoint_timeout=15min",
	"max_wal_size=4GB",
	// Full-page images compressed (lz4, or pglz on a server built
	// without it): less WAL to write and flush right after a checkpoint.
	"wal_compression=lz4",
	// Room for the counters, the MUR indexes' right-hand pages and the
	// catalog.
	"shared_buffers=256MB",
}

// ErrNoPostgres means the machine has no PostgreSQL server binaries.
var ErrNoPostgres = errors.New("no PostgreSQL server binaries found (initdb, pg_ctl): install the postgresql package (Debian: apt-get install postgresql) or set DATABASE_URL")

// findPostgres returns the directory holding initdb and pg_ctl: the PATH
// first, then Debian's versioned directories, newest first.
func findPostgres() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isFile(filepath.Join(d, "pg_ctl")) && isFile(filepath.Join(d, "initdb")) {
			return d, nil
		}
	}
	return "", ErrNoPostgres
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// StartPostgres initialises a cluster under cfg.DataDir when there is
// none, and starts it listening on 127.0.0.1 only, with trust
// authentication for the postgres user.
func StartPostgres(ctx context.Context, cfg PGConfig) (*Postgres, error) {
	bin, err := findPostgres()
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pg := &Postgres{bin: bin, dir: dir, port: cfg.Port, log: log}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		pg.asUser = "postgres"
		if _, err := user.Lookup(pg.asUser); err != nil {
			return nil, fmt.Errorf("devenv: PostgreSQL cannot run as root and there is no %q user to run it as: create one, run as another user, or set DATABASE_URL", pg.asUser)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("devenv: postgres data directory: %w", err)
	}
	if err := pg.own(); err != nil {
		return nil, err
	}
	if !isFile(filepath.Join(dir, "PG_VERSION")) {
		log.Info("initialising a private PostgreSQL cluster", "dir", dir)
		if err := pg.run(ctx, "initdb", "-D", dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"); err != nil {
			return nil, fmt.Errorf("devenv: initdb: %w", err)
		}
	}
	if port, ok := pg.runningPort(); ok && Listening(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))) {
		pg.port = port
		log.Info("reusing the running private PostgreSQL cluster", "port", port)
		return pg, nil
	}
	if pg.port == 0 {
		if pg.port, err = freePort(); err != nil {
			return nil, err
		}
	}
	// Autovacuum on whatever the cluster's settings say: the planner's
	// statistics stay fresh as tables grow (Vivace's hot statements do not
	// depend on them, docs/architecture.md, "PostgreSQL"; everything else
	// plans better with them).
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c autovacuum=on", pg.port, dir)
	for _, kv := range ServerSettings {
		if kv == "wal_compression=lz4" && pg.run(ctx, "postgres", "-D", dir, "-C", "wal_compression", "-c", kv) != nil {
			kv = "wal_compression=on" // a server built without lz4
		}
		opts += " -c " + kv
	}
	if err := pg.run(ctx, "pg_ctl", "-D", dir, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		return nil, fmt.Errorf("devenv: start postgres (log in %s): %w", filepath.Join(dir, "server.log"), err)
	}
	log.Info("private PostgreSQL cluster started", "port", pg.port)
	return pg, nil
}

// runningPort reads the port of a server already running on the data
// directory from its postmaster.pid.
func (p *Postgres) runningPort() (int, bool) {
	b, err := os.ReadFile(filepath.Join(p.dir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		return 0, false
	}
	port, err := strconv.Atoi(strings.TrimSpace(lines[3]))
	return port, err == nil
}

// own hands the data directory to the user the server runs as.
func (p *Postgres) own() error {
	if p.asUser == "" {
		return nil
	}
	u, err := user.Lookup(p.asUser)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	err = filepath.WalkDir(p.dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("devenv: hand %s to user %s: %w", p.dir, p.asUser, err)
	}
	// The server must reach its directory through every parent.
	for d := filepath.Dir(p.dir); d != "/" && d != "."; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("devenv: user %s cannot reach %s (directory %s is not searchable by others): choose another --data-dir or set DATABASE_URL", p.asUser, p.dir, d)
		}
	}
	return nil
}

func (p *Postgres) run(ctx context.Context, name string, args ...string) error {
	path := filepath.Join(p.bin, name)
	var cmd *exec.Cmd
	if p.asUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", p.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// DSN is the connection URL of the cluster's postgres database.
func (p *Postgres) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// Stop shuts the cluster down, letting it finish a checkpoint.
func (p *Postgres) Stop(ctx context.Context) error {
	if err := p.run(ctx, "pg_ctl", "-D", p.dir, "-m", "fast", "-w", "stop"); err != nil {
		return fmt.Errorf("devenv: stop postgres: %w", err)
	}
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// EnsureDatabase creates database name on the server of adminDSN when it
// does not exist, and returns adminDSN pointing at it.
func EnsureDatabase(ctx context.Context, adminDSN, name string) (string, error) {
	u, err := url.Parse(adminDSN)
	if err != nil {
		return "", fmt.Errorf("database URL: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return "", fmt.Errorf("connect to PostgreSQL at %s: %w", u.Host, err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		_, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
		var pgErr *pgconn.PgError
		if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P04") { // created meanwhile
			return "", fmt.Errorf("create database %s: %w", name, err)
		}
	}
	u.Path = "/" + name
	return u.String(), nil
}
