package store

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// ServerError reports whether err is PostgreSQL's answer to a statement (a
// missing table, a bad value, a conflict): the server received the work
// and refused it, so nothing of it was committed. Any other error, a
// failure to reach the server or a connection lost on the way, leaves that
// unknown.
func ServerError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr)
}

// Refused reports whether err is a refusal the database made that would
// be made again: a ServerError other than a lost race (Retryable). It is
// the retry.Policy.Refused of every stage that writes or reads the
// database: a lost connection is waited out, only a refusal fails work.
func Refused(err error) bool { return ServerError(err) && !Retryable(err) }

// Retryable reports whether err says that the transaction lost a race
// with another and would succeed if run again from the start: a
// serialisation failure or a deadlock.
func Retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// UniqueViolation reports whether err is a unique key's refusal of a row:
// of the named constraint, or of any when constraint is empty.
func UniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && (constraint == "" || pgErr.ConstraintName == constraint)
}
