// Package files is the file registry's model: a usage file received for
// a client, the statuses it moves through and its counts, the objects a
// bucket source took, and the news that a file is finished.
package files

import (
	"context"
	"errors"
	"time"
)

// Status is where a file is in its life.
type Status string

// File statuses: received → processing → done | failed | rejected.
const (
	Received   Status = "received"   // registered, waiting for a reader
	Processing Status = "processing" // being read, or read with records still on their way
	Done       Status = "done"       // every record ended as a MUR, an exception or a filtered record
	Failed     Status = "failed"     // reading stopped part-way
	Rejected   Status = "rejected"   // refused on receipt: a duplicate, or not a usage file
)

// Final reports whether a file in this status will not change any more.
func (s Status) Final() bool { return s == Done || s == Failed || s == Rejected }

// File is one file of the registry. Records is what the file's lines
// became: the records read, plus the extra records of lines that
// mediation split (Split); it is nil until the whole file has been read.
// A done file has Records = MURs + Exceptions + Filtered.
type File struct {
	FileID     string
	Client     string
	Name       string
	Source     string // inbox, http, s3
	Location   string // where the original is archived
	Format     string
	SizeBytes  int64
	SHA256     string
	Status     Status
	Reason     string // why it was rejected or failed
	Records    *int64
	Split      int64
	MURs       int64
	Exceptions int64
	Filtered   int64
	ReceivedAt time.Time
	StartedAt  *time.Time
	ReadAt     *time.Time
	FinishedAt *time.Time
}

// Final reports whether the file will not change any more.
func (f File) Final() bool { return f.Status.Final() }

// ErrDuplicate is returned when registering a file whose content the
// client already sent; the new file is registered as rejected.
var ErrDuplicate = errors.New("duplicate file")

// BucketObject is an object a client's bucket source has taken: it became
// file FileID of the registry, received or rejected.
type BucketObject struct {
	Client    string
	Bucket    string
	Key       string
	ETag      string
	SizeBytes int64
	FileID    string
	Outcome   Status // Received or Rejected
	TakenAt   time.Time
}

// Finished is a file that a transaction finished: its counts added up.
type Finished struct {
	FileID string
	Client string
	// Took is the time from receiving the file to its last record ending
	// somewhere.
	Took time.Duration
}

type observerKey struct{}

// WithObserver returns a context under which the writers of outcomes
// (MURs, exceptions, filtered records) call fn, after their transaction
// committed, for each file the transaction finished.
func WithObserver(ctx context.Context, fn func(Finished)) context.Context {
	return context.WithValue(ctx, observerKey{}, fn)
}

// Observe tells ctx's observer, if it has one, of the files done.
func Observe(ctx context.Context, done []Finished) {
	if fn, ok := ctx.Value(observerKey{}).(func(Finished)); ok {
		for _, f := range done {
			fn(f)
		}
	}
}
