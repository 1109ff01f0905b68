-- +goose Up
-- TMF635 Usage Management (docs/tmf635.md).

-- A usage posted to POST /usage: one record of its client's "api"
-- submission of the day (a files row with source 'api', whose line it
-- is), kept as posted until the ingest stage has put it on usage.raw
-- (sent_at), and afterwards for GET /usage while it has no outcome.
-- settled turns true in the transaction that stores its MUR, exception
-- or filtered record (the triggers below), so the received usages are a
-- small partial index, not an anti-join over every MUR.
CREATE TABLE api_usage (
    file_id     uuid        NOT NULL,
    line        bigint      NOT NULL,
    client      text        NOT NULL,
    fields      jsonb       NOT NULL,
    body        jsonb       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    settled     boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (file_id, line)
);
-- What the ingest stage has still to send, in the order posted.
CREATE INDEX api_usage_unsent ON api_usage (file_id, line) WHERE sent_at IS NULL;
-- The usages that are still only received.
CREATE INDEX api_usage_open ON api_usage (client, file_id, line) WHERE NOT settled;

-- Hub subscriptions: where to call back, with what query, for which
-- clients (those of the token that subscribed; NULL: every client).
CREATE TABLE tmf_hubs (
    hub_id     uuid        PRIMARY KEY,
    callback   text        NOT NULL,
    query      text        NOT NULL DEFAULT '',
    clients    text[],
    created_by text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The durable queue of callbacks: one row per subscriber and change of a
-- usage, written in the transaction that made the change, deleted once
-- the subscriber acknowledged it. seq orders a usage's changes; the
-- deliverer sends a row only when no earlier row of the same hub and
-- usage is waiting.
CREATE TABLE tmf_deliveries (
    seq        bigserial   PRIMARY KEY,
    hub_id     uuid        NOT NULL REFERENCES tmf_hubs ON DELETE CASCADE,
    client     text        NOT NULL,
    file_id    uuid        NOT NULL,
    line       bigint      NOT NULL,
    part       int         NOT NULL DEFAULT 0,
    kind       text        NOT NULL CHECK (kind IN ('create', 'state')),
    status     text        NOT NULL,
    attempts   int         NOT NULL DEFAULT 0,
    next_at    timestamptz NOT NULL DEFAULT now(),
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tmf_deliveries_usage ON tmf_deliveries (hub_id, file_id, line, part, seq);
CREATE INDEX tmf_deliveries_due ON tmf_deliveries (next_at, seq);

-- A usage time held as text in a record that may be wrong (an
-- exception's): the time, or NULL when it is not one, for the usageDate
-- filters.
-- +goose StatementBegin
CREATE FUNCTION tmf_time(t text) RETURNS timestamptz LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN t::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- Changes of usages, in the transactions that make them. Statement-level
-- triggers with transition tables: one statement per batch, and nothing
-- but a probe of api_usage's key per row when no one subscribed.

-- +goose StatementBegin
CREATE FUNCTION tmf_murs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE api_usage a SET settled = true
        FROM new_rows n WHERE a.file_id = n.file_id AND a.line = n.line AND NOT a.settled;
    IF EXISTS (SELECT 1 FROM tmf_hubs) THEN
        INSERT INTO tmf_deliveries (hub_id, client, file_id, line, part, kind, status)
        SELECT h.hub_id, n.client, n.file_id, n.line, n.part,
            CASE WHEN EXISTS (SELECT 1 FROM api_usage a WHERE a.file_id = n.file_id AND a.line = n.line)
                   OR EXISTS (SELECT 1 FROM exceptions e WHERE e.client = n.client AND e.file_id = n.file_id
                                AND e.line = n.line AND e.part = n.part)
                 THEN 'state' ELSE 'create' END,
            CASE WHEN n.sync_status = 'synced' THEN 'billed' ELSE 'rated' END
        FROM new_rows n JOIN tmf_hubs h ON h.clients IS NULL OR n.client = ANY (h.clients)
        ORDER BY n.file_id, n.line, n.part, h.hub_id;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION tmf_murs_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM tmf_hubs) THEN
        INSERT INTO tmf_deliveries (hub_id, client, file_id, line, part, kind, status)
        SELECT h.hub_id, n.client, n.file_id, n.line, n.part, 'state', 'billed'
        FROM new_rows n JOIN old_rows o ON o.mur_id = n.mur_id
            JOIN tmf_hubs h ON h.clients IS NULL OR n.client = ANY (h.clients)
        WHERE n.sync_status = 'synced' AND o.sync_status <> 'synced'
        ORDER BY n.file_id, n.line, n.part, h.hub_id;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION tmf_exceptions_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE api_usage a SET settled = true
        FROM new_rows n WHERE a.file_id = n.file_id AND a.line = n.line AND NOT a.settled;
    IF EXISTS (SELECT 1 FROM tmf_hubs) THEN
        INSERT INTO tmf_deliveries (hub_id, client, file_id, line, part, kind, status)
        SELECT h.hub_id, n.client, n.file_id, n.line, n.part,
            CASE WHEN EXISTS (SELECT 1 FROM api_usage a WHERE a.file_id = n.file_id AND a.line = n.line)
                 THEN 'state' ELSE 'create' END,
            'rejected'
        FROM new_rows n JOIN tmf_hubs h ON h.clients IS NULL OR n.client = ANY (h.clients)
        ORDER BY n.file_id, n.line, n.part, h.hub_id;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION tmf_exceptions_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM tmf_hubs) THEN
        INSERT INTO tmf_deliveries (hub_id, client, file_id, line, part, kind, status)
        SELECT h.hub_id, n.client, n.file_id, n.line, n.part, 'state',
            CASE n.status WHEN 'reprocessing' THEN 'recycled' ELSE 'rejected' END
        FROM new_rows n JOIN old_rows o ON o.exception_id = n.exception_id
            JOIN tmf_hubs h ON h.clients IS NULL OR n.client = ANY (h.clients)
        WHERE n.status <> o.status AND n.status IN ('reprocessing', 'open')
        ORDER BY n.file_id, n.line, n.part, h.hub_id;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION tmf_filtered_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE api_usage a SET settled = true
        FROM new_rows n WHERE a.file_id = n.file_id AND a.line = n.line AND NOT a.settled;
    RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER tmf_murs_inserted AFTER INSERT ON murs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tmf_murs_inserted();
CREATE TRIGGER tmf_murs_updated AFTER UPDATE ON murs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tmf_murs_updated();
CREATE TRIGGER tmf_exceptions_inserted AFTER INSERT ON exceptions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tmf_exceptions_inserted();
CREATE TRIGGER tmf_exceptions_updated AFTER UPDATE ON exceptions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tmf_exceptions_updated();
CREATE TRIGGER tmf_filtered_inserted AFTER INSERT ON filtered_records
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tmf_filtered_inserted();

-- +goose Down
DROP TRIGGER tmf_filtered_inserted ON filtered_records;
DROP TRIGGER tmf_exceptions_updated ON exceptions;
DROP TRIGGER tmf_exceptions_inserted ON exceptions;
DROP TRIGGER tmf_murs_updated ON murs;
DROP TRIGGER tmf_murs_inserted ON murs;
DROP FUNCTION tmf_filtered_inserted();
DROP FUNCTION tmf_exceptions_updated();
DROP FUNCTION tmf_exceptions_inserted();
DROP FUNCTION tmf_murs_updated();
DROP FUNCTION tmf_murs_inserted();
DROP FUNCTION tmf_time(text);
DROP TABLE tmf_deliveries;
DROP TABLE tmf_hubs;
DROP TABLE api_usage;
