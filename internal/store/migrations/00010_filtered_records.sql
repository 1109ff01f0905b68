-- +goose Up
-- Records a mediation rule dropped on purpose (test traffic, say): kept,
-- once per source position, and counted as their file's filtered records,
-- so that records = MURs + exceptions + filtered always holds.
CREATE TABLE filtered_records (
    client     text        NOT NULL,
    file_id    uuid        NOT NULL,
    line       bigint      NOT NULL,
    part       int         NOT NULL DEFAULT 0,
    record_id  text,
    stage      text        NOT NULL,
    reason     text        NOT NULL,
    record     jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client, file_id, line, part)
);

-- +goose Down
DROP TABLE filtered_records;
