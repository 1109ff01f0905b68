package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vivace.dev/vivace/internal/devenv"
)

// TestBrokerOutage stops the Kafka broker that `vivace serve` works
// against mid-file and starts it again on the same address with the
// same data: every stage waits the outage out without a restart, /readyz
// answers 503 naming the brokers meanwhile, and the file ends with its
// counts adding up, every amount as the reference rater gives in file
// order, and the books balanced.
func TestBrokerOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("stops and starts a Kafka broker")
	}
	outage := outageDuration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute+2*outage)
	defer cancel()

	addr, data := freeAddr(t), t.TempDir()
	startBroker := func() *devenv.Broker {
		t.Helper()
		var err error
		for range 50 { // the port may take a moment to be free again
			var b *devenv.Broker
			if b, err = devenv.StartBroker(ctx, devenv.BrokerConfig{Addr: addr, DataDir: data, Partitions: 4}); err == nil {
				return b
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("start the broker on %s: %v", addr, err)
		return nil
	}
	broker := startBroker()
	t.Cleanup(func() { _ = broker.Close() })

	// A deployment as docs/deploy.md makes one: a migrated database, the
	// topics, an admin token, then the roles.
	d := newDev(t, "")
	d.DSN, d.Kafka = ownDatabase(t), addr
	for _, args := range [][]string{
		{"migrate", "--create"},
		{"topics", "create", "--brokers", addr, "--partitions", "4", "--replication", "1"},
	} {
		if out, errOut, code := d.run(ctx, args...); code != 0 {
			t.Fatalf("vivace %v: exit %d\n%s\n%s", args, code, out, errOut)
		}
	}
	out, errOut, code := d.run(ctx, "token", "create", "--client", "*", "--role", "admin", "--name", "outage-test")
	if code != 0 {
		t.Fatalf("token create: exit %d\n%s\n%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := os.WriteFile(filepath.Join(d.DataDir, "token"), []byte(lines[len(lines)-1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, d, d.DSN, "api,ingest,mediate,rate,catalog")
	d.API = s.api

	client, cat, id := sendOutageFile(ctx, t, d, "kafkaout", 11, s.log.String)

	// Mid-file: some records rated, most not.
	f := waitMidFile(ctx, t, d, id, s.log.String)
	t.Logf("stopping the broker with the file %s at %d MURs, %d exceptions", f.Status, f.MURs, f.Exceptions)
	if err := broker.Close(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	sawDown := false
	for time.Since(down) < outage {
		code, body := readyz(d)
		switch {
		case code == http.StatusServiceUnavailable && strings.Contains(body, "kafka"):
			sawDown = true
		case code == http.StatusServiceUnavailable:
			t.Logf("/readyz during the outage: %s", body)
		case code == http.StatusOK:
			t.Fatalf("/readyz answered 200 with the broker stopped: %s", body)
		default:
			t.Fatalf("/readyz during the outage: %d %s", code, body)
		}
		select {
		case <-s.done:
			t.Fatalf("vivace serve exited during the outage: %v\n%s", s.err, s.log.String())
		case <-time.After(500 * time.Millisecond):
		}
	}
	if !sawDown {
		t.Fatal("/readyz never said the brokers were away")
	}
	broker = startBroker()
	t.Logf("broker back after %s", time.Since(down).Round(time.Second))

	checkAfterOutage(ctx, t, d, outcome{id: id, client: client, catalog: cat, records: outageRecords,
		exited: closed(s.done), log: s.log.String}, "kafka", "broker")
	s.readyz(ctx, t, func(code int) bool { return code == http.StatusOK })
	d.checkBooks(ctx, client)
	s.stop(t)
}
