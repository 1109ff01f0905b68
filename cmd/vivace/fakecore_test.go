package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"vivace.dev/vivace/internal/fakecore"
)

// configFrom runs fake-core's flags through fakeCoreConfig.
func configFrom(t *testing.T, args ...string) (fakecore.Config, error) {
	t.Helper()
	var cfg fakecore.Config
	var cerr error
	app := &cli.App{Commands: []*cli.Command{{Name: "fake-core", Flags: fakeCoreCommand().Flags,
		Action: func(c *cli.Context) error { cfg, cerr = fakeCoreConfig(c); return nil }}}}
	if err := app.Run(append([]string{"vivace", "fake-core"}, args...)); err != nil {
		t.Fatal(err)
	}
	return cfg, cerr
}

func TestFakeCoreConfig(t *testing.T) {
	t.Setenv("VIVACE_CORE_CLIENT_NO", "")
	t.Setenv("VIVACE_CORE_AUTH_KEY", "")
	dir := t.TempDir()
	faults := filepath.Join(dir, "faults.json")
	if err := os.WriteFile(faults, []byte(`{"drop":{"next":2},"reject_accounts":{"ACC-9":{}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := configFrom(t, "--client-no", "1001", "--auth-key", "k1", "--credential", "2002=k2,3003=k=3",
		"--accounts", "A,B", "--faults", "@"+faults, "--seed", "9")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Credentials) != 3 || cfg.Credentials[2] != (fakecore.Credential{ClientNo: 3003, AuthKey: "k=3"}) ||
		len(cfg.Accounts) != 2 || cfg.Faults.Drop.Next != 2 || len(cfg.Faults.RejectAccounts) != 1 || cfg.Seed != 9 {
		t.Errorf("config %+v", cfg)
	}
	t.Setenv("VIVACE_CORE_CLIENT_NO", "77")
	t.Setenv("VIVACE_CORE_AUTH_KEY", "from-env")
	if cfg, err := configFrom(t, "--faults", `{"slow":{"delay":"1s","next":1}}`); err != nil || len(cfg.Credentials) != 1 ||
		cfg.Credentials[0].ClientNo != 77 || cfg.Faults.Slow.Next != 1 {
		t.Errorf("from the environment: %+v %v", cfg, err)
	}
	t.Setenv("VIVACE_CORE_CLIENT_NO", "")
	t.Setenv("VIVACE_CORE_AUTH_KEY", "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no credentials"},
		{[]string{"--credential", "x=secret-key"}, `--credential "x"…: want CLIENT_NO=AUTH_KEY`},
		{[]string{"--credential", "1=k", "--faults", `{"drop":{"nxt":1}}`}, `--faults: faults: json: unknown field "nxt"`},
		{[]string{"--credential", "1=k", "--faults", "@" + filepath.Join(dir, "none.json")}, "none.json"},
	} {
		_, err := configFrom(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "secret-key") {
			t.Errorf("%v: %v; want %q", c.args, err, c.want)
		}
	}
}
