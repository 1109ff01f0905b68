-- +goose Up
-- What a pending event waits for, as client<US>entity<US>entity_id
-- strings, so that an applied entity finds the events waiting for it
-- through an index instead of re-reading every pending event.
ALTER TABLE catalog_events ADD COLUMN waits_for text[];
CREATE INDEX catalog_events_waits_for ON catalog_events USING gin (waits_for) WHERE outcome = 'pending';

-- +goose Down
DROP INDEX catalog_events_waits_for;
ALTER TABLE catalog_events DROP COLUMN waits_for;
