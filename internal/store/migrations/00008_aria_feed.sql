-- +goose Up
-- The core system's native feed sends updates that leave out unchanged
-- fields; the last full form of each entity is kept here to complete
-- them, with its ids (a plan instance may name its account by number).
CREATE TABLE aria_feed_entities (
    client   text        NOT NULL,
    lom_type text        NOT NULL,
    id       text        NOT NULL,
    tick     bigint      NOT NULL,
    entity   jsonb       NOT NULL,
    ids      jsonb       NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client, lom_type, id)
);
CREATE INDEX aria_feed_account_no ON aria_feed_entities (client, (ids->>'account_no')) WHERE lom_type = 'Account';

-- Where each feed connection resumes: the last event id whose event was
-- acknowledged downstream.
CREATE TABLE aria_feed_cursors (
    feed          text        PRIMARY KEY,
    last_event_id text        NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE aria_feed_cursors;
DROP TABLE aria_feed_entities;
