// Package ingest receives usage files — from the inbox directory, an HTTP
// upload or a bucket (s3source) — keeps the original, refuses duplicates
// and files that are not usage at all, and registers the rest for the
// ingest stage.
package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/ids"
	"vivace.dev/vivace/internal/usage"
)

// Registry is the part of the file registry the receiver needs;
// internal/store/filestore implements it.
type Registry interface {
	// RegisterFile records a received file. A file whose content the
	// client sent before is registered as rejected and returned with
	// files.ErrDuplicate.
	RegisterFile(ctx context.Context, f files.File) (files.File, error)
}

// Receiver stores incoming files under ArchiveDir and registers them.
type Receiver struct {
	Registry   Registry
	ArchiveDir string
	Logger     *slog.Logger
	// Options returns the reader options of a client (its column mapping
	// and delimiter); nil means defaults for everyone.
	Options func(client string) usage.ReaderOptions
}

// ErrRejected wraps the reason a file was refused. The refused file is
// registered with status rejected, so an operator sees it.
var ErrRejected = errors.New("file rejected")

var clientRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidClient checks a client (tenant) name: letters, digits, '.', '_'
// and '-', at most 64, starting with a letter or digit.
func ValidClient(client string) error {
	if !clientRE.MatchString(client) {
		return fmt.Errorf("client %q: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", client)
	}
	return nil
}

// Receive copies body into the archive while hashing it, checks that it is
// a readable usage file and registers it. A duplicate or unusable file is
// registered as rejected and returned with an error wrapping ErrRejected
// (and files.ErrDuplicate for duplicates).
func (r *Receiver) Receive(ctx context.Context, client, name, source string, body io.Reader) (files.File, error) {
	if err := ValidClient(client); err != nil {
		return files.File{}, err
	}
	name = filepath.Base(strings.ReplaceAll(name, "\\", "/"))
	if name == "" || name == "." || name == "/" {
		return files.File{}, errors.New("file name is empty")
	}
	id := ids.New()
	dir := filepath.Join(r.ArchiveDir, client)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return files.File{}, fmt.Errorf("archive: %w", err)
	}
	final := filepath.Join(dir, id+"__"+name)
	tmp := final + ".part"
	out, err := os.Create(tmp)
	if err != nil {
		return files.File{}, fmt.Errorf("archive: %w", err)
	}
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(out, h), body)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return files.File{}, fmt.Errorf("receive %s: %w", name, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		_ = os.Remove(tmp)
		return files.File{}, fmt.Errorf("archive: %w", err)
	}
	f := files.File{
		FileID: id, Client: client, Name: name, Source: source, Location: final,
		SizeBytes: size, SHA256: hex.EncodeToString(h.Sum(nil)),
	}
	var opts usage.ReaderOptions
	if r.Options != nil {
		opts = r.Options(client)
	}
	format, cerr := Check(final, name, opts)
	f.Format = string(format)
	if cerr != nil {
		f.Status, f.Reason, f.Format = files.Rejected, cerr.Error(), "unknown"
		got, err := r.Registry.RegisterFile(ctx, f)
		if err != nil {
			return files.File{}, err
		}
		_ = os.Remove(final)
		r.log().Warn("file rejected", "client", client, "file", name, "file_id", got.FileID, "reason", got.Reason)
		return got, fmt.Errorf("%w: %s", ErrRejected, cerr.Error())
	}
	got, err := r.Registry.RegisterFile(ctx, f)
	if errors.Is(err, files.ErrDuplicate) {
		_ = os.Remove(final)
		r.log().Warn("duplicate file refused", "client", client, "file", name, "file_id", got.FileID, "reason", got.Reason)
		return got, fmt.Errorf("%w: %w: %s", ErrRejected, err, got.Reason)
	}
	if err != nil {
		_ = os.Remove(final)
		return files.File{}, err
	}
	r.log().Info("file received", "client", client, "file", name, "file_id", got.FileID, "bytes", size, "source", source)
	return got, nil
}

func (r *Receiver) log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// Check opens a stored file and reads its start to make sure it is a
// usage file in a known format: text, a valid header for CSV. It returns
// the format.
func Check(path, name string, opts usage.ReaderOptions) (usage.Format, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	rd, err := usage.NewReader(f, name, opts)
	if err != nil {
		return "", err
	}
	defer rd.Close()
	return rd.Format(), nil
}
