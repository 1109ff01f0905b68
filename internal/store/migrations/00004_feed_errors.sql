-- +goose Up
-- Sync errors an operator works, events waiting for an entity that has not
-- arrived yet, and who applied what.
ALTER TABLE catalog_events DROP CONSTRAINT catalog_events_outcome_check;
ALTER TABLE catalog_events ADD CONSTRAINT catalog_events_outcome_check
    CHECK (outcome IN ('applied', 'ignored', 'failed', 'pending'));
ALTER TABLE catalog_events
    -- feed (as delivered), retry (a pending event tried again) or
    -- operator:<name> (reprocessed or edited by a person)
    ADD COLUMN source           text        NOT NULL DEFAULT 'feed',
    ADD COLUMN attempts         integer     NOT NULL DEFAULT 1,
    -- the event as first received, kept when an operator edits it
    ADD COLUMN original_payload jsonb,
    ADD COLUMN applied_at       timestamptz,
    ADD COLUMN updated_at       timestamptz NOT NULL DEFAULT now();
UPDATE catalog_events SET applied_at = received_at WHERE outcome = 'applied';
CREATE INDEX catalog_events_open ON catalog_events (client, outcome, received_at)
    WHERE outcome IN ('failed', 'pending');

-- +goose Down
DROP INDEX catalog_events_open;
DELETE FROM catalog_events WHERE outcome = 'pending';
ALTER TABLE catalog_events DROP COLUMN source, DROP COLUMN attempts, DROP COLUMN original_payload,
    DROP COLUMN applied_at, DROP COLUMN updated_at;
ALTER TABLE catalog_events DROP CONSTRAINT catalog_events_outcome_check;
ALTER TABLE catalog_events ADD CONSTRAINT catalog_events_outcome_check
    CHECK (outcome IN ('applied', 'ignored', 'failed'));
