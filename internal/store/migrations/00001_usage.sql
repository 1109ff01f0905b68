-- +goose Up

-- Every submitted usage file (or API submission) has one row. The counts
-- move in the same transactions that write the MURs and exceptions, so a
-- finished file always satisfies records = murs + exceptions + filtered.
CREATE TABLE files (
    file_id      uuid PRIMARY KEY,
    client       text        NOT NULL,
    name         text        NOT NULL,
    source       text        NOT NULL,
    location     text        NOT NULL,
    format       text        NOT NULL,
    size_bytes   bigint      NOT NULL,
    sha256       text        NOT NULL,
    status       text        NOT NULL DEFAULT 'received'
        CHECK (status IN ('received', 'processing', 'done', 'failed', 'rejected')),
    reason       text,
    records      bigint,
    murs         bigint      NOT NULL DEFAULT 0,
    exceptions   bigint      NOT NULL DEFAULT 0,
    filtered     bigint      NOT NULL DEFAULT 0,
    lease_owner  text,
    lease_until  timestamptz,
    received_at  timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    read_at      timestamptz,
    finished_at  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
-- The same content for the same client is accepted once; refused copies
-- stay visible as rejected rows.
CREATE UNIQUE INDEX files_client_sha256 ON files (client, sha256) WHERE status <> 'rejected';
CREATE INDEX files_pending ON files (received_at) WHERE status IN ('received', 'processing');
CREATE INDEX files_client_received ON files (client, received_at DESC);

-- Monetized usage records. (client, record_id) is the exactly-once key;
-- (file_id, line, part) says where the record came from, so a replay of
-- the same line is recognised and not mistaken for a duplicate.
CREATE TABLE murs (
    mur_id          uuid        PRIMARY KEY,
    client          text        NOT NULL,
    record_id       text        NOT NULL,
    file_id         uuid        NOT NULL,
    line            bigint      NOT NULL,
    part            integer     NOT NULL DEFAULT 0,
    account_id      text        NOT NULL,
    usage_type      text        NOT NULL,
    quantity        numeric     NOT NULL,
    usage_time      timestamptz NOT NULL,
    currency        text        NOT NULL,
    gross_amount    numeric     NOT NULL,
    discount_amount numeric     NOT NULL,
    net_amount      numeric     NOT NULL,
    rate_detail     jsonb       NOT NULL,
    qualifiers      jsonb       NOT NULL DEFAULT '{}',
    attributes      jsonb       NOT NULL DEFAULT '{}',
    rated_at        timestamptz NOT NULL DEFAULT now(),
    sync_status     text        NOT NULL DEFAULT 'unsynced'
        CHECK (sync_status IN ('unsynced', 'batched', 'synced', 'failed')),
    aggregate_id    uuid,
    sync_batch_id   uuid,
    sync_error      text,
    CONSTRAINT murs_client_record UNIQUE (client, record_id)
);
CREATE INDEX murs_file ON murs (file_id, line, part);
CREATE INDEX murs_unsynced ON murs (client, usage_time) WHERE sync_status = 'unsynced';

-- Records that could not become MURs. One row per source position; a
-- record that fails again after a reprocess updates its row.
CREATE TABLE exceptions (
    exception_id uuid        PRIMARY KEY,
    client       text        NOT NULL,
    file_id      uuid        NOT NULL,
    line         bigint      NOT NULL,
    part         integer     NOT NULL DEFAULT 0,
    record_id    text,
    stage        text        NOT NULL,
    code         text        NOT NULL,
    field        text,
    message      text        NOT NULL,
    record       jsonb       NOT NULL,
    status       text        NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'reprocessing', 'resolved', 'discarded')),
    attempts     integer     NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT exceptions_source UNIQUE (client, file_id, line, part)
);
CREATE INDEX exceptions_client_status ON exceptions (client, status, created_at);
CREATE INDEX exceptions_code ON exceptions (client, code) WHERE status = 'open';

-- Cumulative quantity per client, account, usage type and UTC month
-- (month = year*12 + month - 1): the c0 of tiered rating.
CREATE TABLE usage_counters (
    client     text    NOT NULL,
    account_id text    NOT NULL,
    usage_type text    NOT NULL,
    month      integer NOT NULL,
    quantity   numeric NOT NULL,
    PRIMARY KEY (client, account_id, usage_type, month)
);

-- Free-unit allowance used per account, discount and month.
CREATE TABLE allowance_usage (
    client      text    NOT NULL,
    account_id  text    NOT NULL,
    discount_id text    NOT NULL,
    month       integer NOT NULL,
    used        numeric NOT NULL,
    PRIMARY KEY (client, account_id, discount_id, month)
);

-- +goose Down
DROP TABLE allowance_usage;
DROP TABLE usage_counters;
DROP TABLE exceptions;
DROP TABLE murs;
DROP TABLE files;
