// Package authstore keeps API tokens (api_tokens) and writes the audit log
// (audit_log) in PostgreSQL: the auth.Store and auth.Auditor of
// internal/auth.
package authstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/auth"
	"vivace.dev/vivace/internal/store"
)

// Store is the token store and audit log over a database.
type Store struct{ db *store.Store }

// New is a Store over db.
func New(db *store.Store) *Store { return &Store{db: db} }

const tokenColumns = `token_id, name, role, clients, created_at, created_by, expires_at, revoked_at,
	coalesce(revoked_by, ''), last_used_at`

func scanToken(row pgx.Row, extra ...any) (auth.Token, error) {
	var t auth.Token
	var role string
	err := row.Scan(append([]any{&t.ID, &t.Name, &role, &t.Clients, &t.CreatedAt, &t.CreatedBy, &t.ExpiresAt,
		&t.RevokedAt, &t.RevokedBy, &t.LastUsedAt}, extra...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, auth.ErrTokenNotFound
	}
	if err != nil {
		return t, err
	}
	if t.Role, err = auth.ParseRole(role); err != nil {
		return t, err
	}
	return t, nil
}

// InsertToken stores a new token.
func (s *Store) InsertToken(ctx context.Context, t auth.Token, hash []byte) error {
	_, err := s.db.Pool().Exec(ctx, `INSERT INTO api_tokens (token_id, name, role, clients, secret_hash, created_at,
			created_by, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		t.ID, t.Name, t.Role.String(), t.Clients, hash, t.CreatedAt, t.CreatedBy, t.ExpiresAt)
	if store.UniqueViolation(err, "api_tokens_pkey") {
		return auth.ErrTokenIDTaken
	}
	return err
}

// TokenByID returns a token and the hash of its secret.
func (s *Store) TokenByID(ctx context.Context, id string) (auth.Token, []byte, error) {
	var hash []byte
	t, err := scanToken(s.db.Pool().QueryRow(ctx, `SELECT `+tokenColumns+`, secret_hash FROM api_tokens
		WHERE token_id = $1`, id), &hash)
	return t, hash, err
}

// Tokens returns every token, newest first.
func (s *Store) Tokens(ctx context.Context) ([]auth.Token, error) {
	rows, err := s.db.Pool().Query(ctx, `SELECT `+tokenColumns+` FROM api_tokens ORDER BY created_at DESC, token_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []auth.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken marks a token revoked by by at at.
func (s *Store) RevokeToken(ctx context.Context, id, by string, at time.Time) (auth.Token, error) {
	t, err := scanToken(s.db.Pool().QueryRow(ctx, `UPDATE api_tokens SET revoked_at = $2, revoked_by = $3
		WHERE token_id = $1 AND revoked_at IS NULL
		RETURNING `+tokenColumns, id, at, by))
	if errors.Is(err, auth.ErrTokenNotFound) {
		if _, _, err := s.TokenByID(ctx, id); err != nil {
			return auth.Token{}, err
		}
		return auth.Token{}, auth.ErrAlreadyRevoked
	}
	return t, err
}

// TouchToken records the token's last use; an older time than the one
// stored changes nothing.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	_, err := s.db.Pool().Exec(ctx, `UPDATE api_tokens SET last_used_at = $2
		WHERE token_id = $1 AND (last_used_at IS NULL OR last_used_at < $2)`, id, at)
	return err
}

// Audit writes entries to the audit log in one statement.
func (s *Store) Audit(ctx context.Context, entries ...auth.AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	n := len(entries)
	at, actor, action, target := make([]time.Time, n), make([]string, n), make([]string, n), make([]string, n)
	client, before, after := make([]*string, n), make([]*string, n), make([]*string, n)
	for i, e := range entries {
		at[i], actor[i], action[i], target[i] = e.At, e.Actor, e.Action, e.Target
		if at[i].IsZero() {
			at[i] = time.Now()
		}
		if e.Client != "" {
			client[i] = &e.Client
		}
		before[i], after[i] = jsonText(e.Before), jsonText(e.After)
	}
	_, err := s.db.Pool().Exec(ctx, `INSERT INTO audit_log (at, actor, action, target, client, before, after)
		SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[])`,
		at, actor, action, target, client, before, after)
	return err
}

func jsonText(b []byte) *string {
	if len(b) == 0 {
		return nil
	}
	s := string(b)
	return &s
}

var (
	_ auth.Store   = (*Store)(nil)
	_ auth.Auditor = (*Store)(nil)
)
