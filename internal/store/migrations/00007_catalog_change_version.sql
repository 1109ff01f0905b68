-- +goose Up
-- Each entity row carries the client's catalog version of the transaction
-- that last wrote it, so that a reader holding the catalog at version v
-- reads only the rows changed after v instead of the whole catalog.
ALTER TABLE catalog_entities ADD COLUMN change_version bigint NOT NULL DEFAULT 0;
CREATE INDEX catalog_entities_changes ON catalog_entities (client, change_version);

-- +goose Down
DROP INDEX catalog_entities_changes;
ALTER TABLE catalog_entities DROP COLUMN change_version;
