-- +goose Up
-- Partial usage records a correlation rule (vivace_correlate) holds until
-- their group is complete or times out. The state lives here, not in the
-- stage's memory, so that open groups survive a restart: the input offsets
-- of a held record are committed once it is stored here.
--
-- A group is open while emitted_at is null; at most one group per client,
-- rule and key is open. An emitted group stays until the outcome of every
-- one of its records is recorded (a MUR, an exception or a filtered
-- record), so that it can be emitted again if the stage died before its
-- output was written.
CREATE TABLE correlation_groups (
    group_id   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client     text        NOT NULL,
    rule       text        NOT NULL,
    key        text        NOT NULL,
    opened_at  timestamptz NOT NULL,
    deadline   timestamptz NOT NULL,
    emitted_at timestamptz,
    outcome    text        CHECK (outcome IN ('complete', 'incomplete', 'failed')),
    emissions  int         NOT NULL DEFAULT 0,
    CHECK ((emitted_at IS NULL) = (outcome IS NULL))
);
CREATE UNIQUE INDEX correlation_groups_open ON correlation_groups (client, rule, key) WHERE emitted_at IS NULL;
CREATE INDEX correlation_groups_deadline ON correlation_groups (rule, deadline) WHERE emitted_at IS NULL;
CREATE INDEX correlation_groups_emitted ON correlation_groups (rule, emitted_at) WHERE emitted_at IS NOT NULL;

-- The records of a group, one row per source position and rule: a replayed
-- record finds its row and changes nothing. group_id has no foreign key:
-- the rows are written and deleted with their group's row locked, and a
-- per-row check would cost more than the rest of the insert.
CREATE TABLE correlation_parts (
    rule       text        NOT NULL,
    client     text        NOT NULL,
    file_id    uuid        NOT NULL,
    line       bigint      NOT NULL,
    part       int         NOT NULL,
    group_id   bigint      NOT NULL,
    seq        int         NOT NULL,
    record     jsonb       NOT NULL,
    meta       jsonb       NOT NULL DEFAULT '{}',
    arrived_at timestamptz NOT NULL,
    PRIMARY KEY (rule, client, file_id, line, part)
);
CREATE INDEX correlation_parts_group ON correlation_parts (group_id, seq);

-- +goose Down
DROP TABLE correlation_parts;
DROP TABLE correlation_groups;
