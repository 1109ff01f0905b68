-- +goose Up
-- Messages a stage could not read at all: not even the client and file
-- they came from, so no file's counts can take them as an exception.
-- Nothing is dropped: each is kept here, byte for byte, with the stage,
-- where it sat on its topic and why it could not be read. A replayed
-- message is stored once (its topic position).
CREATE TABLE unreadable_messages (
    message_id  uuid        PRIMARY KEY,
    stage       text        NOT NULL,
    topic       text        NOT NULL,
    -- -1 for a message that did not come from a topic
    kafka_partition integer NOT NULL,
    kafka_offset    bigint  NOT NULL,
    reason      text        NOT NULL,
    raw         bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT unreadable_messages_position UNIQUE (stage, topic, kafka_partition, kafka_offset)
);
CREATE INDEX unreadable_messages_created ON unreadable_messages (created_at);

-- +goose Down
DROP TABLE unreadable_messages;
