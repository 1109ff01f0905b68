package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"vivace.dev/vivace/internal/clientcfg"
	"vivace.dev/vivace/internal/corelink"
	"vivace.dev/vivace/internal/fakecore"
)

// The client_no the built-in fake core lets in when VIVACE_CORE_CLIENT_NO
// is not set.
const devCoreClientNo = 1001

// FakeCoreURLFile is where vivace dev writes the built-in fake core's
// base URL, under its data directory (for scripts: its /fake/totals).
const FakeCoreURLFile = "fake-core.url"

// devCore is the core endpoint vivace dev gives the sync stream: the
// --core-url given, or a built-in fake core on a free port.
type devCore struct {
	URL, ClientNo, AuthKey string
	fake                   *fakecore.Server
}

func (c *devCore) close() {
	if c.fake != nil {
		_ = c.fake.Close()
	}
}

// startDevCore starts the built-in fake core unless url names a core. It
// lets in the default credentials (VIVACE_CORE_CLIENT_NO and
// VIVACE_CORE_AUTH_KEY, else client 1001 with a key made up now) and those
// of every client whose settings name a client_no and an auth key
// variable that is set.
func startDevCore(url, dataDir string, settings *clientcfg.Watched, log *slog.Logger) (*devCore, error) {
	c := &devCore{URL: url, ClientNo: os.Getenv(corelink.EnvClientNo), AuthKey: os.Getenv(corelink.EnvAuthKey)}
	_ = os.Remove(filepath.Join(dataDir, FakeCoreURLFile))
	if url != "" {
		return c, nil
	}
	if c.ClientNo == "" {
		c.ClientNo = strconv.Itoa(devCoreClientNo)
	}
	no, err := corelink.ParseClientNo(c.ClientNo)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", corelink.EnvClientNo, err)
	}
	if c.AuthKey == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		c.AuthKey = hex.EncodeToString(b[:])
	}
	creds := []fakecore.Credential{{ClientNo: no, AuthKey: c.AuthKey}}
	if f, _ := settings.Current(); f != nil {
		for name := range f.Clients {
			if cc := f.Core(name); cc != nil && cc.ClientNo != 0 && cc.AuthKeyEnv != "" && os.Getenv(cc.AuthKeyEnv) != "" {
				creds = append(creds, fakecore.Credential{ClientNo: cc.ClientNo, AuthKey: os.Getenv(cc.AuthKeyEnv)})
			}
		}
	}
	srv, err := fakecore.Start("127.0.0.1:0", fakecore.Config{Credentials: creds, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("built-in fake core: %w", err)
	}
	c.URL, c.fake = srv.URL(), srv
	if err := os.WriteFile(filepath.Join(dataDir, FakeCoreURLFile), []byte(srv.URL()+"\n"), 0o644); err != nil {
		_ = srv.Close()
		return nil, err
	}
	log.Info("built-in fake core billing system (no --core-url given)", "url", srv.URL(), "client_no", no,
		"totals", srv.URL()+"/fake/totals")
	return c, nil
}
