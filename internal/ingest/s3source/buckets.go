// Package s3source takes usage files from S3-compatible buckets (AWS S3,
// MinIO, Ceph): a poller per client bucket source, woken early by S3
// event notifications, that hands each new object to the ingest
// Receiver.
package s3source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"vivace.dev/vivace/internal/clientcfg"
	"vivace.dev/vivace/internal/files"
	"vivace.dev/vivace/internal/ingest"
)

// TakenRecord remembers which bucket objects were taken;
// internal/store/filestore implements it.
type TakenRecord interface {
	// TakenObjects reports, for each (keys[i], etags[i]) of a client's
	// bucket, the outcome of taking that object (files.Received or
	// files.Rejected), or "" when it was not taken yet.
	TakenObjects(ctx context.Context, client, bucket string, keys, etags []string) ([]files.Status, error)
	// RecordTakenObject records that an object was taken.
	RecordTakenObject(ctx context.Context, o files.BucketObject) error
}

// Buckets polls the bucket source of every client that has one (AWS S3,
// MinIO, Ceph or any S3-compatible store) and hands each new object to the
// Receiver with source "s3".
//
// Only objects directly under the client's prefix are taken; deeper keys
// ("folders", such as processed/ and rejected/) and keys ending in '/' are
// not, nor are names starting with '.' or ending in .tmp or .part.
// Unfinished uploads are never listed by S3, and a PUT or a completed
// multipart upload makes the whole object visible at once, so an object
// can be taken as soon as it is listed; a client whose uploader rewrites
// the same key several times can set a settle time, and an object is then
// taken once it has been listed unchanged for that long.
//
// An object is known by its key and ETag. The record of taken objects in
// the store keeps one from being taken twice, also across restarts; an
// object rewritten with new content has a new ETag and is taken again, and
// the file registry refuses it as a duplicate file if its content was
// received before. Objects stay where they are unless the source says
// after_receive: move, which moves received objects under processed/ and
// refused ones under rejected/.
//
// Every problem (bucket missing, access denied, network) is logged with
// the client, the bucket and the key or prefix, and retried on the next
// poll; one client's failing source does not hold up the others, each
// being polled on its own.
type Buckets struct {
	Receiver *ingest.Receiver
	Taken    TakenRecord
	// Sources returns the bucket source of each client. It is called on
	// every round, so changed settings apply without a restart.
	Sources func() map[string]clientcfg.BucketSource
	Logger  *slog.Logger
	// PageSize is how many keys one list request asks for; 0 means 1000,
	// the most S3 returns.
	PageSize int
	// Getenv reads the environment variables the settings name; nil means
	// os.Getenv.
	Getenv func(string) string
	// Transport carries the S3 requests; nil means the client library's.
	Transport http.RoundTripper

	mu    sync.Mutex
	polls map[string]*bucketPoll
	wake  chan struct{} // Notify asks Run to look at once
}

// bucketPoll is the state of one client's source. Only the goroutine that
// set running touches s3 and seen.
type bucketPoll struct {
	client  string
	src     clientcfg.BucketSource
	s3      *minio.Client
	next    time.Time
	running bool
	again   bool // notified while running: poll again once done
	seen    map[string]seenObject
}

type seenObject struct {
	etag  string
	size  int64
	mod   time.Time
	first time.Time
}

// Run polls every source on its interval until ctx ends, then waits for
// the polls under way.
func (b *Buckets) Run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	wake := b.wakeup()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		now := time.Now()
		for _, p := range b.claim(now, false) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = b.poll(ctx, p)
				b.release(p)
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-wake:
		}
	}
}

func (b *Buckets) wakeup() chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wake == nil {
		b.wake = make(chan struct{}, 1)
	}
	return b.wake
}

// wakeLocked asks Run to look for due sources now; b.mu is held.
func (b *Buckets) wakeLocked() {
	if b.wake == nil {
		b.wake = make(chan struct{}, 1)
	}
	select {
	case b.wake <- struct{}{}:
	default: // a wake-up is already waiting
	}
}

// Notify tells the poller that an object was written: every source whose
// bucket is bucket and whose prefix key falls under is polled now rather
// than on its interval (or again as soon as the poll under way ends). It
// returns the clients of those sources. A notification is only a hint: the
// poll lists the source and takes what it would take on its interval, so a
// forged or repeated notification changes nothing but when Run looks.
// Sources are known once Run has started.
func (b *Buckets) Notify(bucket, key string) []string { return b.NotifyFor(bucket, key, nil) }

// NotifyFor is Notify for the sources of the clients may allows only (all
// when may is nil): a sender sees and wakes nothing of another client's.
func (b *Buckets) NotifyFor(bucket, key string, may func(client string) bool) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var clients []string
	for client, p := range b.polls {
		if p.src.Bucket != bucket || !strings.HasPrefix(key, p.src.Prefix) || may != nil && !may(client) {
			continue
		}
		clients = append(clients, client)
		if p.running {
			p.again = true
		} else {
			p.next = time.Time{}
		}
	}
	if len(clients) > 0 {
		b.wakeLocked()
	}
	sort.Strings(clients)
	return clients
}

// PollOnce polls every source now, whether due or not, and returns what
// went wrong per client (each is also logged). A source being polled by
// Run at the same time is skipped.
func (b *Buckets) PollOnce(ctx context.Context) map[string]error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs = map[string]error{}
	)
	for _, p := range b.claim(time.Now(), true) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := b.poll(ctx, p)
			b.release(p)
			if err != nil {
				mu.Lock()
				errs[p.client] = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// claim brings the polls in line with the settings and marks running the
// ones to poll now: those due, or all when all is set.
func (b *Buckets) claim(now time.Time, all bool) []*bucketPoll {
	var sources map[string]clientcfg.BucketSource
	if b.Sources != nil {
		sources = b.Sources()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.polls == nil {
		b.polls = map[string]*bucketPoll{}
	}
	for client, p := range b.polls {
		if _, ok := sources[client]; !ok && !p.running {
			delete(b.polls, client)
			b.log().Info("bucket source removed", "client", client, "bucket", p.src.Bucket, "prefix", p.src.Prefix)
		}
	}
	clients := make([]string, 0, len(sources))
	for client := range sources {
		clients = append(clients, client)
	}
	sort.Strings(clients)
	var out []*bucketPoll
	for _, client := range clients {
		src := sources[client]
		p, ok := b.polls[client]
		if ok && p.src != src && !p.running {
			ok = false // changed settings: start afresh
		}
		if !ok {
			p = &bucketPoll{client: client, src: src, next: now}
			b.polls[client] = p
			b.log().Info("bucket source", "client", client, "location", src.Location(), "endpoint", src.Endpoint,
				"interval", src.PollInterval, "after_receive", afterReceive(src))
		}
		if p.running || (!all && now.Before(p.next)) {
			continue
		}
		p.running = true
		p.next = now.Add(p.src.PollInterval)
		out = append(out, p)
	}
	return out
}

func (b *Buckets) release(p *bucketPoll) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p.running = false
	if p.again {
		p.again = false
		p.next = time.Time{}
		b.wakeLocked()
	}
}

func afterReceive(src clientcfg.BucketSource) string {
	if src.Move {
		return "move"
	}
	return "leave"
}

// poll lists the client's prefix page by page and takes the new objects.
func (b *Buckets) poll(ctx context.Context, p *bucketPoll) error {
	src := p.src
	log := b.log().With("client", p.client, "bucket", src.Bucket, "prefix", src.Prefix)
	if err := ingest.ValidClient(p.client); err != nil {
		log.Error("bucket source not polled", "err", err)
		return err
	}
	if p.s3 == nil {
		c, err := b.newClient(p.client, src)
		if err != nil {
			log.Error("bucket source not polled; will retry", "err", err)
			return err
		}
		p.s3 = c
	}
	listCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	pageSize := b.PageSize
	if pageSize <= 0 {
		pageSize = 1000
	}
	objects := p.s3.ListObjects(listCtx, src.Bucket, minio.ListObjectsOptions{Prefix: src.Prefix, MaxKeys: pageSize})
	var listed map[string]bool
	if src.Settle > 0 {
		listed = map[string]bool{}
		if p.seen == nil {
			p.seen = map[string]seenObject{}
		}
	}
	page := make([]minio.ObjectInfo, 0, pageSize)
	var errs []error
	for o := range objects {
		if o.Err != nil {
			if ctx.Err() != nil {
				return nil
			}
			err := fmt.Errorf("client %s: list %s: %w", p.client, src.Location(), explain(o.Err))
			log.Error("bucket source unreadable; will retry", "code", errorCode(o.Err), "err", err)
			return err
		}
		if !b.candidate(src, o) {
			continue
		}
		if listed != nil {
			listed[o.Key] = true
		}
		page = append(page, o)
		if len(page) == pageSize {
			errs = append(errs, b.takePage(ctx, log, p, page)...)
			page = page[:0]
		}
		if ctx.Err() != nil {
			return nil
		}
	}
	errs = append(errs, b.takePage(ctx, log, p, page)...)
	if listed != nil && ctx.Err() == nil {
		for k := range p.seen {
			if !listed[k] {
				delete(p.seen, k)
			}
		}
	}
	return errors.Join(errs...)
}

// candidate tells whether a listed entry is a file of the client at all.
func (b *Buckets) candidate(src clientcfg.BucketSource, o minio.ObjectInfo) bool {
	if strings.HasSuffix(o.Key, "/") || !strings.HasPrefix(o.Key, src.Prefix) {
		return false
	}
	name := strings.TrimPrefix(o.Key, src.Prefix)
	return name != "" && !strings.Contains(name, "/") && !strings.HasPrefix(name, ".") &&
		!strings.HasSuffix(name, ".tmp") && !strings.HasSuffix(name, ".part")
}

// takePage takes the objects of one list page that were not taken before
// (and, in move mode, moves taken ones that are still in place).
func (b *Buckets) takePage(ctx context.Context, log *slog.Logger, p *bucketPoll, page []minio.ObjectInfo) []error {
	if len(page) == 0 || ctx.Err() != nil {
		return nil
	}
	src := p.src
	keys := make([]string, len(page))
	etags := make([]string, len(page))
	for i, o := range page {
		keys[i], etags[i] = o.Key, o.ETag
	}
	outcomes, err := b.Taken.TakenObjects(ctx, p.client, src.Bucket, keys, etags)
	if err != nil {
		log.Error("cannot read which objects were taken; will retry", "err", err)
		return []error{err}
	}
	now := time.Now()
	var errs []error
	for i, o := range page {
		if ctx.Err() != nil {
			return errs
		}
		if outcomes[i] != "" {
			// Taken before; in move mode a failed move is tried again.
			if src.Move {
				if err := b.move(ctx, log.With("key", o.Key), p, o, outcomes[i]); err != nil {
					errs = append(errs, err)
				}
			}
			continue
		}
		if !settled(p, o, now) {
			continue
		}
		if err := b.take(ctx, log, p, o); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// settled tells whether an object has been listed unchanged for the
// source's settle time (always, when it has none).
func settled(p *bucketPoll, o minio.ObjectInfo, now time.Time) bool {
	if p.src.Settle <= 0 {
		return true
	}
	prev, ok := p.seen[o.Key]
	if !ok || prev.etag != o.ETag || prev.size != o.Size || !prev.mod.Equal(o.LastModified) {
		p.seen[o.Key] = seenObject{etag: o.ETag, size: o.Size, mod: o.LastModified, first: now}
		return false
	}
	return now.Sub(prev.first) >= p.src.Settle
}

// take streams one object into the receiver and records it as taken.
func (b *Buckets) take(ctx context.Context, log *slog.Logger, p *bucketPoll, o minio.ObjectInfo) error {
	src := p.src
	log = log.With("key", o.Key)
	name := strings.TrimPrefix(o.Key, src.Prefix)
	opts := minio.GetObjectOptions{}
	if o.ETag != "" {
		// The content read must be the one listed: a rewrite in between
		// fails the request and the new content is taken on the next poll.
		if err := opts.SetMatchETag(o.ETag); err != nil {
			return err
		}
	}
	obj, err := p.s3.GetObject(ctx, src.Bucket, o.Key, opts)
	if err != nil {
		code := errorCode(err)
		err = fmt.Errorf("client %s: get s3://%s/%s: %w", p.client, src.Bucket, o.Key, explain(err))
		log.Error("bucket object not taken; will retry", "code", code, "err", err)
		return err
	}
	defer obj.Close()
	f, err := b.Receiver.Receive(ctx, p.client, name, "s3", obj)
	outcome := files.Received
	switch {
	case err == nil:
	case errors.Is(err, ingest.ErrRejected):
		outcome = files.Rejected
	default:
		if ctx.Err() != nil {
			return nil
		}
		code := errorCode(err)
		err = fmt.Errorf("client %s: take s3://%s/%s: %w", p.client, src.Bucket, o.Key, explain(err))
		log.Error("bucket object not taken; will retry", "code", code, "err", err)
		return err
	}
	// Record the version actually read.
	etag := o.ETag
	if info, err := obj.Stat(); err == nil && info.ETag != "" {
		etag = info.ETag
	}
	rec := files.BucketObject{Client: p.client, Bucket: src.Bucket, Key: o.Key, ETag: etag,
		SizeBytes: f.SizeBytes, FileID: f.FileID, Outcome: outcome}
	// The object is in the registry now, whatever happens to this poll:
	// record it even when shutting down.
	if err := b.Taken.RecordTakenObject(context.WithoutCancel(ctx), rec); err != nil {
		log.Error("bucket object received but not recorded as taken; it will be taken again and refused as a duplicate",
			"file_id", f.FileID, "err", err)
		return err
	}
	if outcome == files.Received {
		log.Info("bucket object taken", "file_id", f.FileID, "etag", etag, "bytes", f.SizeBytes)
	} else {
		log.Warn("bucket object refused", "file_id", f.FileID, "etag", etag, "reason", f.Reason)
	}
	if src.Move {
		o.ETag, o.Size = etag, f.SizeBytes
		return b.move(ctx, log, p, o, outcome)
	}
	return nil
}

// maxCopySize is the largest object one server-side copy may copy; larger
// ones are copied in parts.
const maxCopySize = 5 << 30

// move moves a taken object (the version with o's ETag) under the
// processed or rejected prefix: a server-side copy, then the removal of
// the original. log names the key.
func (b *Buckets) move(ctx context.Context, log *slog.Logger, p *bucketPoll, o minio.ObjectInfo, outcome files.Status) error {
	src, key := p.src, o.Key
	dst := src.ProcessedPrefix
	if outcome == files.Rejected {
		dst = src.RejectedPrefix
	}
	dst += strings.TrimPrefix(key, src.Prefix)
	to := minio.CopyDestOptions{Bucket: src.Bucket, Object: dst}
	from := minio.CopySrcOptions{Bucket: src.Bucket, Object: key, MatchETag: o.ETag}
	var err error
	if o.Size <= maxCopySize {
		_, err = p.s3.CopyObject(ctx, to, from)
	} else {
		_, err = p.s3.ComposeObject(ctx, to, from)
	}
	if err == nil {
		err = p.s3.RemoveObject(ctx, src.Bucket, key, minio.RemoveObjectOptions{})
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		code := errorCode(err)
		err = fmt.Errorf("client %s: move s3://%s/%s to %s: %w", p.client, src.Bucket, key, dst, explain(err))
		log.Error("taken bucket object not moved; will retry", "code", code, "err", err)
		return err
	}
	log.Debug("bucket object moved", "to", dst)
	return nil
}

// newClient connects a source with the credentials its settings name.
func (b *Buckets) newClient(client string, src clientcfg.BucketSource) (*minio.Client, error) {
	creds, err := b.credentials(client, src)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(src.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("client %s: endpoint %q: %w", client, src.Endpoint, err)
	}
	lookup := minio.BucketLookupAuto
	if src.PathStyle {
		lookup = minio.BucketLookupPath
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:        creds,
		Secure:       u.Scheme == "https",
		Region:       src.Region,
		BucketLookup: lookup,
		Transport:    b.Transport,
		// The next poll is the retry that matters; a few quick ones
		// ride out a dropped connection.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("client %s: endpoint %s: %w", client, src.Endpoint, err)
	}
	return c, nil
}

func (b *Buckets) credentials(client string, src clientcfg.BucketSource) (*credentials.Credentials, error) {
	if src.CredentialsFile != "" {
		if _, err := os.Stat(src.CredentialsFile); err != nil {
			return nil, fmt.Errorf("client %s: credentials_file: %w", client, err)
		}
		profile := src.Profile
		if profile == "" {
			profile = "default"
		}
		creds := credentials.NewFileAWSCredentials(src.CredentialsFile, profile)
		v, err := creds.GetWithContext(&credentials.CredContext{Endpoint: src.Endpoint})
		if err != nil {
			return nil, fmt.Errorf("client %s: credentials_file %s, profile %s: %w", client, src.CredentialsFile, profile, err)
		}
		if v.AccessKeyID == "" || v.SecretAccessKey == "" {
			return nil, fmt.Errorf("client %s: credentials_file %s, profile %s: needs aws_access_key_id and aws_secret_access_key",
				client, src.CredentialsFile, profile)
		}
		return creds, nil
	}
	getenv := b.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	id, secret := getenv(src.AccessKeyIDEnv), getenv(src.SecretAccessKeyEnv)
	var missing []string
	if id == "" {
		missing = append(missing, src.AccessKeyIDEnv)
	}
	if secret == "" {
		missing = append(missing, src.SecretAccessKeyEnv)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("client %s: environment variable %s not set (named by the bucket source's credentials settings)",
			client, strings.Join(missing, " and "))
	}
	var token string
	if src.SessionTokenEnv != "" {
		if token = getenv(src.SessionTokenEnv); token == "" {
			return nil, fmt.Errorf("client %s: environment variable %s not set (named by session_token_env)", client, src.SessionTokenEnv)
		}
	}
	return credentials.NewStaticV4(id, secret, token), nil
}

// errorCode is the S3 error code in err ("NoSuchBucket", "AccessDenied",
// …), or "" for errors that are not the store's answer.
func errorCode(err error) string {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		return resp.Code
	}
	return ""
}

// explain adds to an S3 error the store's error code (its message alone
// often does not say which problem it is) and a hint at what to check.
func explain(err error) error {
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) || resp.Code == "" {
		return err
	}
	hint := ""
	switch resp.Code {
	case "NoSuchBucket":
		hint = " (check the bucket name and the endpoint)"
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken":
		hint = " (check the credentials the client's bucket source names and their permissions on the bucket)"
	case "PermanentRedirect", "AuthorizationHeaderMalformed":
		hint = " (check the region and the endpoint)"
	}
	return fmt.Errorf("%s: %w%s", resp.Code, err, hint)
}

func (b *Buckets) log() *slog.Logger {
	if b.Logger != nil {
		return b.Logger
	}
	return slog.Default()
}
