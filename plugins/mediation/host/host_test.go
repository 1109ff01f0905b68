package host_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"vivace.dev/vivace/internal/codes"
	"vivace.dev/vivace/plugins/mediation"
	"vivace.dev/vivace/plugins/mediation/host"
)

// binaries are the plugins TestMain builds: name -> path and checksum.
var binaries = map[string]struct{ path, sum string }{}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "mediation-plugins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	builds := []struct{ name, pkg, ldflags string }{
		{"telco", "../clients/telco", ""},
		{"cloud", "../clients/cloud", ""},
		{"misbehave", "./testdata/misbehave", ""},
		{"misbehave-v1", "./testdata/misbehave", "-X main.protocolVersion=1"},
		{"misbehave-v99", "./testdata/misbehave", "-X main.protocolVersion=99"},
	}
	for _, b := range builds {
		out := filepath.Join(dir, b.name)
		cmd := exec.Command("go", "build", "-o", out, "-ldflags", b.ldflags, b.pkg)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", b.pkg, err)
			return 1
		}
		binaries[b.name] = struct{ path, sum string }{out, checksum(out)}
	}
	return m.Run()
}

func checksum(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func spec(t testing.TB, name, client string, config any) host.Spec {
	t.Helper()
	b := binaries[name]
	cfg, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	return host.Spec{Client: client, Path: b.path, SHA256: b.sum, Timeout: 5 * time.Second, Retries: 2, Config: cfg}
}

func newHost(t testing.TB) *host.Host {
	h := host.New(host.WithRetryDelay(10*time.Millisecond), host.WithSocketDir(socketBase(t)))
	t.Cleanup(h.Close)
	return h
}

// socketBase is a directory for a host's sockets, removed when the test
// ends. It is not t.TempDir: that path holds the test's name, and a Unix
// socket's path has room for about a hundred bytes.
func socketBase(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil { // empty: the host removed its own
			t.Errorf("socket directory: %v", err)
			_ = os.RemoveAll(dir)
		}
	})
	return dir
}

// record is an input whose fields already are in normal form, for the
// echoing test plugin.
func record(line int64, kv ...string) mediation.RawRecord {
	f := map[string]string{"record_id": fmt.Sprintf("r%d", line), "account_id": "A1", "usage_type": "VOICE",
		"quantity": "1", "usage_time": "2026-10-01T08:00:00Z"}
	for i := 0; i < len(kv); i += 2 {
		f[kv[i]] = kv[i+1]
	}
	return mediation.RawRecord{Client: "acme", FileID: "f1", Line: line, Fields: f}
}

func mediate(t *testing.T, h *host.Host, s host.Spec, recs ...mediation.RawRecord) []host.Outcome {
	t.Helper()
	out, err := h.Mediate(context.Background(), s, recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(recs) {
		t.Fatalf("%d outcomes for %d records", len(out), len(recs))
	}
	return out
}

// wantPluginErrors checks that every outcome is a PLUGIN_ERROR naming the
// client, the plugin's path, the record's line and each of the phrases.
func wantPluginErrors(t *testing.T, s host.Spec, recs []mediation.RawRecord, out []host.Outcome, phrases ...string) {
	t.Helper()
	for i, o := range out {
		if o.Err == nil || o.Err.Code != codes.PluginError {
			t.Fatalf("record %d: outcome %+v, want PLUGIN_ERROR", i, o)
		}
		want := append([]string{"client " + s.Client, "plugin " + s.Path, fmt.Sprintf("line %d", recs[i].Line)}, phrases...)
		for _, p := range want {
			if !strings.Contains(o.Err.Message, p) {
				t.Errorf("record %d: message %q lacks %q", i, o.Err.Message, p)
			}
		}
	}
}

func TestTelcoRoundTrip(t *testing.T) {
	h := newHost(t)
	s := spec(t, "telco", "acme", map[string]any{"test_msisdn_prefixes": []string{"4479000"}})
	cdr := func(line int64, kv ...string) mediation.RawRecord {
		f := map[string]string{"call_id": fmt.Sprintf("c%d", line), "msisdn": "447700900123", "duration_sec": "61",
			"start_time": "2026-10-01 08:00:00", "roaming": "N"}
		for i := 0; i < len(kv); i += 2 {
			f[kv[i]] = kv[i+1]
		}
		return mediation.RawRecord{Client: "acme", FileID: "f1", Line: line, Fields: f}
	}
	out := mediate(t, h, s, cdr(2), cdr(3, "roaming", "Y"), cdr(4, "msisdn", "4479000001"), cdr(5, "duration_sec", "soon"))

	if len(out[0].Records) != 1 || out[0].Records[0].Get("quantity") != "2" || out[0].Records[0].Get("usage_type") != "VOICE" {
		t.Errorf("home call: %+v", out[0])
	}
	if len(out[1].Records) != 2 || out[1].Records[1].Get("record_id") != "c3-roaming" || out[1].Records[1].Get("usage_type") != "VOICE_ROAMING" {
		t.Errorf("roaming call: %+v", out[1])
	}
	if out[2].Filtered != "test call: msisdn 4479000001 has test prefix 4479000" {
		t.Errorf("test call: %+v", out[2])
	}
	if e := out[3].Err; e == nil || e.Code != codes.BadQuantity || e.Field != "duration_sec" ||
		!strings.Contains(e.Message, "client acme, plugin "+s.Path+", line 5") {
		t.Errorf("bad duration: %+v", out[3])
	}
	info, ok := h.Info("acme")
	if !ok || info.Name != "telco" || info.Version == "" {
		t.Errorf("Info = %+v, %v", info, ok)
	}
}

func TestCloudRoundTrip(t *testing.T) {
	h := newHost(t)
	s := spec(t, "cloud", "nimbus", map[string]any{"services": map[string]string{"cdn": "CDN_GB"}, "free_services": []string{"backup"}})
	row := func(line int64, service, bytes string) mediation.RawRecord {
		return mediation.RawRecord{Client: "nimbus", FileID: "f1", Line: line, Fields: map[string]string{
			"event_id": fmt.Sprintf("e%d", line), "account": "A1", "service": service, "bytes": bytes, "timestamp": "2026-10-01T08:00:00Z"}}
	}
	out := mediate(t, h, s, row(2, "cdn", "1500000001"), row(3, "backup", "1"), row(4, "gpu", "1"))
	want := map[string]string{"record_id": "e2", "account_id": "A1", "usage_type": "CDN_GB", "quantity": "1.501",
		"usage_time": "2026-10-01T08:00:00Z", "service": "cdn", "bytes": "1500000001"}
	if len(out[0].Records) != 1 || !reflect.DeepEqual(out[0].Records[0].Map(), want) {
		t.Errorf("cdn: %+v", out[0])
	}
	if out[1].Filtered != "free service backup" {
		t.Errorf("backup: %+v", out[1])
	}
	if e := out[2].Err; e == nil || e.Code != codes.MediationFailed || e.Field != "service" {
		t.Errorf("gpu: %+v", out[2])
	}
}

func TestSplitAndFilterThroughTheWire(t *testing.T) {
	h := newHost(t)
	out := mediate(t, h, spec(t, "misbehave", "acme", map[string]any{"mode": "echo"}),
		record(2, "split", "2"), record(3, "filter", "not billable"))
	if len(out[0].Records) != 2 || out[0].Records[1].Get("record_id") != "r2-2" {
		t.Errorf("split: %+v", out[0])
	}
	if out[1].Filtered != "not billable" {
		t.Errorf("filter: %+v", out[1])
	}
}

// A plugin built before protocol version 2 speaks only version 1: the
// host talks to it in version 1, with the same results.
func TestVersion1PluginStillWorks(t *testing.T) {
	h := newHost(t)
	s := spec(t, "misbehave-v1", "acme", map[string]any{"mode": "echo"})
	out := mediate(t, h, s, record(2, "split", "2"), record(3, "filter", "not billable"), record(4))
	if len(out[0].Records) != 2 || out[0].Records[1].Get("record_id") != "r2-2" {
		t.Errorf("split: %+v", out[0])
	}
	if out[1].Filtered != "not billable" {
		t.Errorf("filter: %+v", out[1])
	}
	if out[2].Err != nil || len(out[2].Records) != 1 || out[2].Records[0].Get("usage_type") != "VOICE" {
		t.Errorf("echo: %+v", out[2])
	}
}

func TestCrashIsRestartedAndRetried(t *testing.T) {
	h := newHost(t)
	s := spec(t, "misbehave", "acme", map[string]any{"mode": "crash", "times": 2, "state_dir": t.TempDir()})
	recs := []mediation.RawRecord{record(2), record(3)}
	out := mediate(t, h, s, recs...)
	for i, o := range out {
		if o.Err != nil || len(o.Records) != 1 || o.Records[0].Get("record_id") != recs[i].Fields["record_id"] {
			t.Errorf("record %d after two crashes: %+v", i, o)
		}
	}
}

func TestCrashAfterRetriesFailsEveryRecord(t *testing.T) {
	h := newHost(t)
	s := spec(t, "misbehave", "acme", map[string]any{"mode": "crash"})
	s.Retries = 1
	recs := []mediation.RawRecord{record(2), record(3), record(4)}
	out := mediate(t, h, s, recs...)
	wantPluginErrors(t, s, recs, out, "failed after 2 attempt(s)", "process ended")

	// The host starts the plugin again for the next batch.
	ok := mediate(t, h, spec(t, "misbehave", "acme", map[string]any{"mode": "echo"}), record(5))
	if ok[0].Err != nil {
		t.Errorf("after the crashes: %+v", ok[0])
	}
}

func TestHangTimesOutAndRestarts(t *testing.T) {
	h := newHost(t)
	s := spec(t, "misbehave", "acme", map[string]any{"mode": "hang", "times": 1, "state_dir": t.TempDir()})
	s.Timeout = 300 * time.Millisecond
	out := mediate(t, h, s, record(2))
	if out[0].Err != nil || len(out[0].Records) != 1 {
		t.Errorf("after one hung call: %+v", out[0])
	}

	s = spec(t, "misbehave", "acme", map[string]any{"mode": "hang"})
	s.Timeout, s.Retries = 200*time.Millisecond, 1
	recs := []mediation.RawRecord{record(3), record(4)}
	wantPluginErrors(t, s, recs, mediate(t, h, s, recs...), "no answer within 200ms", "failed after 2 attempt(s)")
}

func TestBadChecksumIsRefusedBeforeStart(t *testing.T) {
	starts := filepath.Join(t.TempDir(), "starts")
	t.Setenv("MISBEHAVE_STARTS", starts)
	h := newHost(t)
	s := spec(t, "misbehave", "acme", map[string]any{"mode": "echo"})
	s.SHA256 = strings.Repeat("0", 64)
	recs := []mediation.RawRecord{record(2)}
	wantPluginErrors(t, s, recs, mediate(t, h, s, recs...), "checksum does not match", "failed after 1 attempt(s)",
		"the settings say sha256 "+s.SHA256, "the binary misbehave has "+binaries["misbehave"].sum)
	if _, err := os.Stat(starts); !os.IsNotExist(err) {
		t.Errorf("the binary ran: %v", err)
	}

	// The right checksum starts it.
	s.SHA256 = binaries["misbehave"].sum
	if out := mediate(t, h, s, recs...); out[0].Err != nil {
		t.Fatalf("with the right checksum: %+v", out[0])
	}
	if _, err := os.Stat(starts); err != nil {
		t.Errorf("the binary did not run: %v", err)
	}
}

func TestWrongProtocolVersionIsRefused(t *testing.T) {
	h := newHost(t)
	s := spec(t, "misbehave-v99", "acme", map[string]any{"mode": "echo"})
	recs := []mediation.RawRecord{record(2)}
	wantPluginErrors(t, s, recs, mediate(t, h, s, recs...),
		"plugin speaks protocol version 99; this host supports versions 1, 2")
}

func TestRefusedConfig(t *testing.T) {
	h := newHost(t)
	s := spec(t, "telco", "acme", map[string]any{"no_such_setting": true})
	recs := []mediation.RawRecord{record(2)}
	wantPluginErrors(t, s, recs, mediate(t, h, s, recs...), "the plugin refused its config", "no_such_setting")
}

func TestWrongResultCount(t *testing.T) {
	h := newHost(t)
	s := spec(t, "misbehave", "acme", map[string]any{"mode": "wrong_count"})
	s.Retries = 1
	recs := []mediation.RawRecord{record(2), record(3)}
	wantPluginErrors(t, s, recs, mediate(t, h, s, recs...), "the plugin answered 1 results for 2 records")
}

func TestBatchError(t *testing.T) {
	h := newHost(t)
	s := spec(t, "misbehave", "acme", map[string]any{"mode": "batch_error", "times": 1, "state_dir": t.TempDir()})
	if out := mediate(t, h, s, record(2)); out[0].Err != nil {
		t.Errorf("retried batch: %+v", out[0])
	}
	s = spec(t, "misbehave", "acme", map[string]any{"mode": "batch_error"})
	recs := []mediation.RawRecord{record(3)}
	wantPluginErrors(t, s, recs, mediate(t, h, s, recs...), "the plugin failed the batch: the batch cannot be handled")
}

func TestMediatedRecordMissingField(t *testing.T) {
	h := newHost(t)
	s := spec(t, "misbehave", "acme", map[string]any{"mode": "echo"})
	out := mediate(t, h, s, record(2), record(3, "drop", "usage_time", "split", "2"), record(4))
	if out[0].Err != nil || out[2].Err != nil {
		t.Errorf("good records failed: %+v, %+v", out[0], out[2])
	}
	e := out[1].Err
	if e == nil || e.Code != codes.PluginError || e.Field != "usage_time" || out[1].Records != nil ||
		e.Message != "client acme, plugin "+s.Path+", line 3: mediated record 1 of 2 lacks required field usage_time" {
		t.Errorf("record without usage_time: %+v (%v)", out[1], e)
	}
}

func TestRecordErrorCodes(t *testing.T) {
	h := newHost(t)
	s := spec(t, "misbehave", "acme", map[string]any{"mode": "record_error"})
	out := mediate(t, h, s, record(2, "code", "BAD_QUANTITY"), record(3, "code", "NOT_A_CODE"), record(4, "code", ""))
	want := []struct {
		code codes.Code
		msg  string
	}{
		{codes.BadQuantity, "client acme, plugin " + s.Path + ", line 2: rejected by the test plugin"},
		{codes.MediationFailed, "client acme, plugin " + s.Path + ", line 3: plugin code NOT_A_CODE: rejected by the test plugin"},
		{codes.MediationFailed, "client acme, plugin " + s.Path + ", line 4: rejected by the test plugin"},
	}
	for i, w := range want {
		if e := out[i].Err; e == nil || e.Code != w.code || e.Field != "code" || e.Message != w.msg {
			t.Errorf("record %d: %+v, want %s %q", i, e, w.code, w.msg)
		}
	}
}

func TestReloadWhenBinaryOrConfigChanges(t *testing.T) {
	h := newHost(t)
	s := spec(t, "misbehave", "acme", map[string]any{"mode": "echo", "tag": "a"})
	if got := mediate(t, h, s, record(2))[0].Records[0].Get("tag"); got != "a" {
		t.Fatalf("tag %q", got)
	}
	s.Config = json.RawMessage(`{"mode":"echo","tag":"b"}`)
	if got := mediate(t, h, s, record(3))[0].Records[0].Get("tag"); got != "b" {
		t.Errorf("after a config change: tag %q", got)
	}

	// A new binary at a new path with its checksum replaces the old one.
	s2 := spec(t, "telco", "acme", map[string]any{})
	out := mediate(t, h, s2, mediation.RawRecord{Client: "acme", Line: 4, Fields: map[string]string{
		"call_id": "c4", "msisdn": "4477", "duration_sec": "1", "start_time": "2026-10-01T08:00:00Z"}})
	if out[0].Err != nil || out[0].Records[0].Get("usage_type") != "VOICE" {
		t.Errorf("after a binary change: %+v", out[0])
	}
	if info, _ := h.Info("acme"); info.Name != "telco" {
		t.Errorf("running plugin %q, want telco", info.Name)
	}
}

func TestConcurrentBatchesThroughCrashes(t *testing.T) {
	h := newHost(t)
	s := spec(t, "misbehave", "acme", map[string]any{"mode": "crash", "times": 2, "state_dir": t.TempDir()})
	s.Retries = 5
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs := []mediation.RawRecord{record(int64(10 * g)), record(int64(10*g + 1))}
			out, err := h.Mediate(context.Background(), s, recs)
			if err != nil {
				errs <- err.Error()
				return
			}
			for i, o := range out {
				if o.Err != nil || o.Records[0].Get("record_id") != recs[i].Fields["record_id"] {
					errs <- fmt.Sprintf("goroutine %d record %d: %+v", g, i, o)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestCanceledContextLeavesTheBatchUnhandled(t *testing.T) {
	h := newHost(t)
	s := spec(t, "misbehave", "acme", map[string]any{"mode": "hang"})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	out, err := h.Mediate(ctx, s, []mediation.RawRecord{record(2)})
	if err == nil || out != nil {
		t.Fatalf("Mediate = %+v, %v; want the context's error and no outcomes", out, err)
	}
}

func TestInvalidSpec(t *testing.T) {
	h := newHost(t)
	s := host.Spec{Client: "acme", Path: binaries["telco"].path, SHA256: "abc"}
	recs := []mediation.RawRecord{record(2)}
	wantPluginErrors(t, s, recs, mediate(t, h, s, recs...), `sha256: "abc" is not 64 hexadecimal digits`)
}

func TestClosedHost(t *testing.T) {
	h := host.New()
	h.Close()
	if _, err := h.Mediate(context.Background(), spec(t, "telco", "acme", map[string]any{}), []mediation.RawRecord{record(2)}); err != host.ErrClosed {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}

// sockets lists the Unix sockets under dir.
func sockets(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSocket != 0 {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestNoSocketsLeftBehind: a plugin killed after it hung, or one that
// crashed, leaves its Unix socket behind; the host keeps its plugins'
// sockets in a directory of its own, removes a process's when it ends and
// its own on Close, so none is left.
func TestNoSocketsLeftBehind(t *testing.T) {
	base := socketBase(t)
	h := host.New(host.WithRetryDelay(10*time.Millisecond), host.WithSocketDir(base))
	defer h.Close()

	// A running plugin listens in the host's directory.
	echo := spec(t, "misbehave", "echo", map[string]any{"mode": "echo"})
	if out := mediate(t, h, echo, record(2)); out[0].Err != nil {
		t.Fatalf("echo: %+v", out[0])
	}
	if got := sockets(t, base); len(got) != 1 || !strings.HasPrefix(got[0], h.SocketDir()+string(filepath.Separator)) {
		t.Fatalf("sockets of one running plugin: %v (host directory %s)", got, h.SocketDir())
	}
	// Two hung processes killed, two crashed ones restarted and failed.
	hang := spec(t, "misbehave", "hang", map[string]any{"mode": "hang"})
	hang.Timeout, hang.Retries = 200*time.Millisecond, 1
	wantPluginErrors(t, hang, []mediation.RawRecord{record(3)}, mediate(t, h, hang, record(3)), "no answer within 200ms")
	crash := spec(t, "misbehave", "crash", map[string]any{"mode": "crash"})
	crash.Retries = 1
	wantPluginErrors(t, crash, []mediation.RawRecord{record(4)}, mediate(t, h, crash, record(4)), "process ended")
	// The crashed process's socket goes when the host notices on the next
	// batch, which starts another process.
	crash = spec(t, "misbehave", "crash", map[string]any{"mode": "echo"})
	if out := mediate(t, h, crash, record(5)); out[0].Err != nil {
		t.Fatalf("after the crashes: %+v", out[0])
	}
	if got := sockets(t, base); len(got) != 2 {
		t.Fatalf("sockets with two plugins running, after hangs and crashes: %v", got)
	}
	h.Stop("echo")
	if got := sockets(t, base); len(got) != 1 {
		t.Fatalf("sockets after one plugin was stopped: %v", got)
	}
	dir := h.SocketDir()
	h.Close()
	if got := sockets(t, base); len(got) != 0 {
		t.Fatalf("sockets after Close: %v", got)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the host's socket directory %s is still there: %v", dir, err)
	}
}

// Without WithSocketDir the host makes a private directory in the system
// temporary directory and removes it on Close.
func TestDefaultSocketDirIsPrivateAndRemoved(t *testing.T) {
	h := host.New()
	defer h.Close()
	if out := mediate(t, h, spec(t, "misbehave", "acme", map[string]any{"mode": "echo"}), record(2)); out[0].Err != nil {
		t.Fatalf("echo: %+v", out[0])
	}
	dir := h.SocketDir()
	fi, err := os.Stat(dir)
	if err != nil || filepath.Dir(dir) != filepath.Clean(os.TempDir()) || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory %s: %v %v", dir, fi, err)
	}
	if got := sockets(t, dir); len(got) != 1 {
		t.Fatalf("sockets: %v", got)
	}
	h.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s is still there after Close: %v", dir, err)
	}
}

// A socket directory whose path leaves no room for the sockets' names is
// refused with a message saying so, not with go-plugin's puzzling one.
func TestLongSocketDirIsRefused(t *testing.T) {
	base := filepath.Join(t.TempDir(), strings.Repeat("d", 80))
	if err := os.Mkdir(base, 0o700); err != nil {
		t.Fatal(err)
	}
	h := host.New(host.WithSocketDir(base))
	defer h.Close()
	s := spec(t, "misbehave", "acme", map[string]any{"mode": "echo"})
	recs := []mediation.RawRecord{record(2)}
	wantPluginErrors(t, s, recs, mediate(t, h, s, recs...), "too long a path for the plugins' Unix sockets")
}
