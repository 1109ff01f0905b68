package catalogstore

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"

	"vivace.dev/vivace/internal/store"
)

// AriaFeedState keeps what the reader of the core system's native Data
// Feed needs between events and restarts: each entity's last full form
// (it implements ariafeed.State) and each feed's position.
type AriaFeedState struct{ db *store.Store }

// NewAriaFeedState returns the Data Feed reader's state in db.
func NewAriaFeedState(db *store.Store) AriaFeedState { return AriaFeedState{db: db} }

// LoadEntity returns the last full form stored for an entity.
func (a AriaFeedState) LoadEntity(ctx context.Context, client, lomType, id string) (int64, json.RawMessage, bool, error) {
	var tick int64
	var entity []byte
	err := a.db.Pool().QueryRow(ctx, `SELECT tick, entity FROM aria_feed_entities WHERE client = $1 AND lom_type = $2 AND id = $3`,
		client, lomType, id).Scan(&tick, &entity)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, false, nil
	}
	if err != nil {
		return 0, nil, false, err
	}
	return tick, entity, true, nil
}

// SaveEntity stores an entity's full form at tick, unless a newer tick is
// stored already.
func (a AriaFeedState) SaveEntity(ctx context.Context, client, lomType, id string, tick int64, entity json.RawMessage, ids map[string]string) error {
	b, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	_, err = a.db.Pool().Exec(ctx, `INSERT INTO aria_feed_entities AS e (client, lom_type, id, tick, entity, ids)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (client, lom_type, id) DO UPDATE SET tick = excluded.tick, entity = excluded.entity,
			ids = e.ids || excluded.ids, updated_at = now()
		WHERE e.tick < excluded.tick`, client, lomType, id, tick, []byte(entity), b)
	return err
}

// AccountByNumber returns the id under which the account with the given
// account number was stored.
func (a AriaFeedState) AccountByNumber(ctx context.Context, client, accountNo string) (string, bool, error) {
	var id string
	err := a.db.Pool().QueryRow(ctx, `SELECT id FROM aria_feed_entities
		WHERE client = $1 AND lom_type = 'Account' AND ids->>'account_no' = $2 LIMIT 1`, client, accountNo).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	return id, err == nil, err
}

// Cursor returns the last acknowledged event id of a feed ("" if none).
func (a AriaFeedState) Cursor(ctx context.Context, feed string) (string, error) {
	var id string
	err := a.db.Pool().QueryRow(ctx, `SELECT last_event_id FROM aria_feed_cursors WHERE feed = $1`, feed).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// SaveCursor records the last acknowledged event id of a feed.
func (a AriaFeedState) SaveCursor(ctx context.Context, feed, lastEventID string) error {
	_, err := a.db.Pool().Exec(ctx, `INSERT INTO aria_feed_cursors (feed, last_event_id) VALUES ($1, $2)
		ON CONFLICT (feed) DO UPDATE SET last_event_id = excluded.last_event_id, updated_at = now()`, feed, lastEventID)
	return err
}
