-- +goose Up
-- What an event carried that Vivace ignores (fields it does not use,
-- fields the entity's model does not use), as a JSON array of warnings,
-- each naming its field; kept with the event and shown with it.
ALTER TABLE catalog_events ADD COLUMN warnings jsonb;
CREATE INDEX catalog_events_warned ON catalog_events (client, received_at) WHERE warnings IS NOT NULL;

-- An event that failed because an entity it names failed
-- (REFERENCE_FAILED) waits for that entity as a pending one does, so that
-- it applies once the entity is repaired: the waits_for index covers both.
DROP INDEX catalog_events_waits_for;
CREATE INDEX catalog_events_waits_for ON catalog_events USING gin (waits_for) WITH (fastupdate = off)
    WHERE outcome = 'pending' OR code = 'REFERENCE_FAILED';

-- +goose Down
DROP INDEX catalog_events_waits_for;
CREATE INDEX catalog_events_waits_for ON catalog_events USING gin (waits_for) WITH (fastupdate = off)
    WHERE outcome = 'pending';
DROP INDEX catalog_events_warned;
ALTER TABLE catalog_events DROP COLUMN warnings;
