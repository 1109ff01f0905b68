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
	"io/fs"
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
	// Clients are the clients files are taken for (KnownClients); nil:
	// every client.
	Clients Clients
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

// Receive copies body into the archive while hashing it, checks that the
// client is known and the file is a readable usage file, and registers it.
// A file of a client that is not known, a duplicate or an unusable file is
// registered as rejected and returned with an error wrapping ErrRejected
// (and ErrUnknownClient or files.ErrDuplicate).
func (r *Receiver) Receive(ctx context.Context, client, name, source string, body io.Reader) (files.File, error) {
	return r.receive(ctx, client, name, source, body, true)
}

// ReceiveAnyClient is Receive without the check that the client is known:
// for a sender that takes a new client on purpose (new_client=true), or
// that checked with Known already.
func (r *Receiver) ReceiveAnyClient(ctx context.Context, client, name, source string, body io.Reader) (files.File, error) {
	return r.receive(ctx, client, name, source, body, false)
}

func (r *Receiver) receive(ctx context.Context, client, name, source string, body io.Reader, checkClient bool) (files.File, error) {
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
		return files.File{}, &ArchiveError{Name: name, Op: "create the client's folder", Err: err}
	}
	final := filepath.Join(dir, id+"__"+name)
	tmp := final + ".part"
	out, err := os.Create(tmp)
	if err != nil {
		return files.File{}, &ArchiveError{Name: name, Op: "create the file", Err: err}
	}
	h := sha256.New()
	w := &archiveWriter{w: out}
	size, err := io.Copy(io.MultiWriter(w, h), body)
	if err == nil {
		if err = out.Sync(); err != nil {
			w.err = err
		}
	}
	if cerr := out.Close(); err == nil && cerr != nil {
		err, w.err = cerr, cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		if w.err != nil {
			// Nothing registered, nothing left behind: the same file can
			// be sent again once the archive has room.
			return files.File{}, &ArchiveError{Name: name, Op: fmt.Sprintf("write the file (%d bytes written)", size), Err: w.err}
		}
		return files.File{}, fmt.Errorf("receive %s: %w", name, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		_ = os.Remove(tmp)
		return files.File{}, &ArchiveError{Name: name, Op: "store the file", Err: err}
	}
	f := files.File{
		FileID: id, Client: client, Name: name, Source: source, Location: final,
		SizeBytes: size, SHA256: hex.EncodeToString(h.Sum(nil)),
	}
	var opts usage.ReaderOptions
	if r.Options != nil {
		opts = r.Options(client)
	}
	var cerr error
	if checkClient {
		if cerr = r.Known(ctx, client); cerr != nil && !errors.Is(cerr, ErrUnknownClient) {
			_ = os.Remove(final)
			return files.File{}, cerr
		}
	}
	if cerr == nil {
		var format usage.Format
		format, cerr = Check(final, name, opts)
		f.Format = string(format)
	}
	if cerr != nil {
		f.Status, f.Reason, f.Format = files.Rejected, cerr.Error(), "unknown"
		got, err := r.Registry.RegisterFile(ctx, f)
		if err != nil {
			return files.File{}, err
		}
		_ = os.Remove(final)
		msg := "file rejected"
		if errors.Is(cerr, ErrUnknownClient) {
			msg = "file rejected: the client is not known"
		}
		r.log().Warn(msg, "client", client, "file", name, "file_id", got.FileID, "source", source, "reason", got.Reason)
		return got, fmt.Errorf("%w: %w", ErrRejected, cerr)
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

// ErrArchive says the file archive could not store a received file: a
// full or read-only disk, a folder that is not one. Nothing of the file was
// registered or left in the archive; it can be sent again once the
// archive takes files.
var ErrArchive = errors.New("the file archive cannot store the file")

// ArchiveError is an ErrArchive with what failed.
type ArchiveError struct {
	Name string // the file's name
	Op   string // what the archive could not do
	Err  error
}

func (e *ArchiveError) Error() string {
	return fmt.Sprintf("%s %s: cannot %s: %v", ErrArchive, e.Name, e.Op, e.Err)
}

func (e *ArchiveError) Unwrap() []error { return []error{ErrArchive, e.Err} }

// Reason is the error without the archive's paths, for an answer to the
// sender: what went wrong (no space left on device, a read-only file
// system) and that the file can be sent again.
func (e *ArchiveError) Reason() string {
	cause := e.Err
	var pe *fs.PathError
	if errors.As(cause, &pe) {
		cause = pe.Err
	}
	var le *os.LinkError
	if errors.As(e.Err, &le) {
		cause = le.Err
	}
	return fmt.Sprintf("%s %s (%v): nothing was registered; send it again once the archive has room", ErrArchive, e.Name, cause)
}

// archiveWriter remembers a write error, to tell the archive's failures
// from the sender's.
type archiveWriter struct {
	w   io.Writer
	err error
}

func (a *archiveWriter) Write(p []byte) (int, error) {
	n, err := a.w.Write(p)
	if err != nil {
		a.err = err
	}
	return n, err
}

func (r *Receiver) log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// Check opens a stored file and reads its start to make sure it is a
// usage file in a known format: text, a valid header for CSV, and at least
// one of the required fields after the client's column mapping (in the
// CSV header, or in the first records of JSON Lines; usage.CheckFields).
// It returns the format.
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
	if err := rd.CheckFields(); err != nil {
		return "", err
	}
	return rd.Format(), nil
}
