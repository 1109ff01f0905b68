package ingest

import (
	"context"
	"errors"
	"fmt"
)

// Clients says which clients Vivace knows. A file for a client it does not
// know is refused, so that a misspelt name (--client acmee, an inbox
// folder acmee/) does not start a tenant whose records all fail with
// UNKNOWN_ACCOUNT.
type Clients interface {
	KnownClient(ctx context.Context, client string) (bool, error)
}

// KnownClients is the Clients of docs/ingestion.md: a client is known when
// the client settings have an entry for it or the feed has sent anything
// for it (a catalog entity or an event, applied or not).
type KnownClients struct {
	// InSettings reports an entry under clients: in the client settings.
	InSettings func(client string) bool
	// Catalog reports whether the feed has sent anything for the client
	// (internal/store/catalogstore implements it).
	Catalog interface {
		HasClient(ctx context.Context, client string) (bool, error)
	}
}

// KnownClient implements Clients.
func (k KnownClients) KnownClient(ctx context.Context, client string) (bool, error) {
	if k.InSettings != nil && k.InSettings(client) {
		return true, nil
	}
	if k.Catalog == nil {
		return false, nil
	}
	return k.Catalog.HasClient(ctx, client)
}

// ErrUnknownClient is wrapped by the error for a file of a client Vivace
// does not know.
var ErrUnknownClient = errors.New("unknown client")

// UnknownClientError is the refusal of a file for a client Vivace does not
// know, saying what would make it known.
type UnknownClientError struct{ Client string }

func (e *UnknownClientError) Error() string {
	return fmt.Sprintf("client %q is not known: no catalog event names it and the client settings have no entry for it "+
		"(a misspelt client name?). To make it known, publish its catalog or add it under clients: in the client settings "+
		"(an empty entry, %s: {}, is enough); to take files for it before then, on purpose, send them with "+
		"vivace ingest --new-client (POST /api/v1/files?new_client=true)", e.Client, e.Client)
}

// Unwrap lets errors.Is find ErrUnknownClient.
func (e *UnknownClientError) Unwrap() error { return ErrUnknownClient }

// Known returns nil when the receiver takes files for client, an
// *UnknownClientError when it does not know it, or the error that kept it
// from finding out. Without Clients every client is known.
func (r *Receiver) Known(ctx context.Context, client string) error {
	if r.Clients == nil {
		return nil
	}
	ok, err := r.Clients.KnownClient(ctx, client)
	if err != nil {
		return err
	}
	if !ok {
		return &UnknownClientError{Client: client}
	}
	return nil
}
