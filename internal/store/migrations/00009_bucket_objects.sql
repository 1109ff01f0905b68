-- +goose Up
-- Objects a client's bucket source has taken. An object is identified by
-- its key and ETag: the same key with a new ETag is new content and is
-- taken again (the file registry then refuses it if the content is a
-- duplicate after all); the same key and ETag is never taken twice, also
-- across restarts.
CREATE TABLE bucket_objects (
    client     text        NOT NULL,
    bucket     text        NOT NULL,
    key        text        NOT NULL,
    etag       text        NOT NULL,
    size_bytes bigint      NOT NULL,
    file_id    uuid        NOT NULL REFERENCES files (file_id),
    outcome    text        NOT NULL CHECK (outcome IN ('received', 'rejected')),
    taken_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client, bucket, key, etag)
);

-- +goose Down
DROP TABLE bucket_objects;
