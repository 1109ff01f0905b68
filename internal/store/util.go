package store

import (
	"cmp"
	"errors"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5/pgconn"
)

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}

// ServerError reports whether err is PostgreSQL's answer to a statement (a
// missing table, a bad value, a conflict): the server received the work
// and refused it, so nothing of it was committed. Any other error, a
// failure to reach the server or a connection lost on the way, leaves that
// unknown.
func ServerError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr)
}
