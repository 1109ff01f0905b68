-- +goose Up

-- Catalog and account entities as the core system's feed describes them.
-- One table for all kinds keeps versioning uniform: an event applies only
-- when its version is newer than the stored one, deletes included.
CREATE TABLE catalog_entities (
    client      text        NOT NULL,
    entity      text        NOT NULL
        CHECK (entity IN ('account', 'usage_type', 'plan', 'subscription', 'discount')),
    entity_id   text        NOT NULL,
    version     bigint      NOT NULL,
    deleted     boolean     NOT NULL DEFAULT false,
    data        jsonb       NOT NULL,
    event_id    text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client, entity, entity_id)
);

-- A per-client change counter: readers compare it with the version of
-- their in-memory snapshot and reload when it moved.
CREATE TABLE catalog_versions (
    client  text   PRIMARY KEY,
    version bigint NOT NULL
);

-- Every event received from the feed and what became of it.
CREATE TABLE catalog_events (
    event_id    text        NOT NULL,
    client      text        NOT NULL,
    entity      text        NOT NULL,
    entity_id   text        NOT NULL,
    version     bigint      NOT NULL,
    op          text        NOT NULL,
    occurred_at timestamptz,
    payload     jsonb       NOT NULL,
    outcome     text        NOT NULL CHECK (outcome IN ('applied', 'ignored', 'failed')),
    code        text,
    message     text,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id)
);
CREATE INDEX catalog_events_entity ON catalog_events (client, entity, entity_id, version);

CREATE VIEW accounts AS
    SELECT client, entity_id AS account_id, data->>'currency' AS currency,
           data->>'status' AS status, data->>'name' AS name, version, updated_at
    FROM catalog_entities WHERE entity = 'account' AND NOT deleted;

-- +goose Down
DROP VIEW accounts;
DROP TABLE catalog_events;
DROP TABLE catalog_versions;
DROP TABLE catalog_entities;
