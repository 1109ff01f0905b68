package store

import (
	"context"
	"errors"
	"strings"
	"syscall"

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

// Unavailable says in a few words, without the driver's, why the server
// did not answer: for a readiness probe, whose answer anyone may read.
// The error itself belongs in the log.
func Unavailable(err error) string {
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer in time"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: the server is not running, or not where the connection settings say"
	case errors.As(err, &pgErr) && pgErr.Code == "57P03":
		return "the server is starting up or shutting down"
	case errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "57"):
		return "the server ended the connection (shut down or restarted by its operator)"
	case errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "28"):
		return "the server refused the login"
	case errors.As(err, &pgErr) && pgErr.Code == "3D000":
		return "the database does not exist"
	case errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "53"):
		return "the server is out of resources (connections, memory or disk)"
	case strings.Contains(err.Error(), "closed pool"):
		return "the connection pool is closed"
	}
	return "does not answer"
}
