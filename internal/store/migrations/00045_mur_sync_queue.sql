-- +goose Up
-- The MURs no sync cycle has put into an aggregated record yet move from
-- a partial index on murs (murs_unaggregated, WHERE aggregate_id IS
-- NULL) to a narrow table of their own. The partial index named a column
-- the answer of a batch sets, so marking a MUR synced was an update that
-- wrote a new entry in every index of murs. Without it the answer
-- changes no indexed column of murs and, with room left on the page
-- (fillfactor), PostgreSQL updates the row in place (a HOT update): no
-- index is touched.
--
-- A MUR is in mur_sync_queue from the statement that stores it until
-- the cycle transaction that commits its aggregated record (or marks it
-- failed as unsendable) deletes it. The rows come from a statement
-- trigger on murs, so every writer of MURs (COPY included) queues them
-- without knowing about it; they leave with the MUR if it is deleted.
CREATE TABLE mur_sync_queue (
    client     text        NOT NULL,
    usage_time timestamptz NOT NULL,
    mur_id     uuid        NOT NULL,
    -- the order a cycle reads them in
    PRIMARY KEY (client, usage_time, mur_id)
);

-- +goose StatementBegin
CREATE FUNCTION mur_sync_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mur_sync_queue (client, usage_time, mur_id)
    SELECT client, usage_time, mur_id FROM new_murs
    WHERE aggregate_id IS NULL AND sync_status = 'unsynced';
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION mur_sync_dequeue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM mur_sync_queue q USING old_murs o
    WHERE q.client = o.client AND q.usage_time = o.usage_time AND q.mur_id = o.mur_id;
    RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER murs_enqueue AFTER INSERT ON murs REFERENCING NEW TABLE AS new_murs
    FOR EACH STATEMENT EXECUTE FUNCTION mur_sync_enqueue();
CREATE TRIGGER murs_dequeue AFTER DELETE ON murs REFERENCING OLD TABLE AS old_murs
    FOR EACH STATEMENT EXECUTE FUNCTION mur_sync_dequeue();

INSERT INTO mur_sync_queue (client, usage_time, mur_id)
SELECT client, usage_time, mur_id FROM murs WHERE aggregate_id IS NULL AND sync_status = 'unsynced';

DROP INDEX murs_unaggregated;

-- Room on each page for the new version of its rows when their batch's
-- answer marks them, so that the update stays on the page. It applies to
-- pages written from now on.
ALTER TABLE murs SET (fillfactor = 85);

-- +goose Down
ALTER TABLE murs RESET (fillfactor);
CREATE INDEX murs_unaggregated ON murs (client, usage_time) WHERE aggregate_id IS NULL;
DROP TRIGGER murs_dequeue ON murs;
DROP TRIGGER murs_enqueue ON murs;
DROP FUNCTION mur_sync_dequeue();
DROP FUNCTION mur_sync_enqueue();
DROP TABLE mur_sync_queue;
