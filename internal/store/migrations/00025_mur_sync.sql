-- +goose Up
-- MUR sync: the jobs that run cycles, the batches sent to the core billing
-- system and the aggregated records they carry. A MUR names its
-- aggregated record (murs.aggregate_id) and the batch that last carried
-- it (murs.sync_batch_id); an aggregated record keeps its id, which the
-- core sees as client_record_id, however often it is sent.

-- One run of the sync cycle for one client: scheduled, asked for
-- (vivace sync run) or a resend (vivace sync retry).
CREATE TABLE sync_jobs (
    job_id       uuid        PRIMARY KEY,
    client       text        NOT NULL,
    trigger      text        NOT NULL CHECK (trigger IN ('schedule', 'manual', 'retry')),
    requested_by text,
    -- the process that ran it (host and pid)
    owner        text        NOT NULL,
    status       text        NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'done', 'failed')),
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    -- what the cycle sent: aggregated records, batches, the MURs they
    -- cover; and what the core answered for them (aggregated records)
    aggregates   integer     NOT NULL DEFAULT 0,
    batches      integer     NOT NULL DEFAULT 0,
    murs         bigint      NOT NULL DEFAULT 0,
    synced       integer     NOT NULL DEFAULT 0,
    failed       integer     NOT NULL DEFAULT 0,
    error        text
);
CREATE INDEX sync_jobs_client ON sync_jobs (client, started_at DESC);
CREATE INDEX sync_jobs_started ON sync_jobs (started_at DESC);
CREATE INDEX sync_jobs_running ON sync_jobs (client) WHERE status = 'running';

-- One bulk_record_usage_m call's worth of aggregated records.
--   ready      its records are assigned; not yet on mur.sync.batches
--   published  on the topic, waiting for the sync service
--   sending    the sync service is calling the core
--   done       answered: each record synced or failed
--   failed     the call failed as a whole (error_code, error_msg)
CREATE TABLE sync_batches (
    batch_id     uuid        PRIMARY KEY,
    client       text        NOT NULL,
    -- the job that last sent it
    job_id       uuid        NOT NULL,
    status       text        NOT NULL DEFAULT 'ready'
        CHECK (status IN ('ready', 'published', 'sending', 'done', 'failed')),
    records      integer     NOT NULL,
    murs         bigint      NOT NULL,
    synced       integer     NOT NULL DEFAULT 0,
    failed       integer     NOT NULL DEFAULT 0,
    -- calls made for it (a redelivery after a crash makes another)
    attempts     integer     NOT NULL DEFAULT 0,
    -- why it failed as a whole: refused, unavailable, bad_answer,
    -- invalid, no_endpoint (docs/sync.md)
    failure      text,
    error_code   bigint,
    error_msg    text,
    -- the batch whose failed records this one sends again
    resend_of    uuid,
    -- whether its MURs are marked batched; a cycle's batches are not
    -- until their cycle ends without their answer (the answer marks the
    -- MURs synced or failed, and stamps them, in one update)
    stamped      boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    answered_at  timestamptz
);
CREATE INDEX sync_batches_client ON sync_batches (client, created_at DESC);
CREATE INDEX sync_batches_created ON sync_batches (created_at DESC);
CREATE INDEX sync_batches_job ON sync_batches (job_id);
CREATE INDEX sync_batches_open ON sync_batches (client, created_at)
    WHERE status IN ('ready', 'published', 'sending');

-- An aggregated record: the MURs of one client, account, usage type,
-- currency and UTC day summed (or a single MUR when mur_sync.aggregate is
-- false). aggregate_id is its client_record_id at the core.
CREATE TABLE sync_aggregates (
    aggregate_id uuid        PRIMARY KEY,
    client       text        NOT NULL,
    account_id   text        NOT NULL,
    usage_type   text        NOT NULL,
    usage_day    date        NOT NULL,
    -- sent as usage_date (the day's start, or the MUR's usage time)
    usage_date   timestamptz NOT NULL,
    currency     text        NOT NULL,
    units        numeric     NOT NULL,
    amount       numeric     NOT NULL,
    murs         integer     NOT NULL CHECK (murs > 0),
    -- when the oldest of its MURs was rated (how long billing waits)
    oldest_rated_at timestamptz NOT NULL,
    -- its MURs, for marking them with the core's answer by primary key
    mur_ids      uuid[]      NOT NULL,
    qualifiers   jsonb       NOT NULL DEFAULT '{}',
    comments     text        NOT NULL DEFAULT '',
    status       text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'synced', 'failed')),
    -- the batch that last carried it
    batch_id     uuid        NOT NULL,
    -- the core's record_error_code and record_error_msg, or the whole
    -- call's error when the batch failed as a whole
    error_code   bigint,
    error_msg    text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_aggregates_batch ON sync_aggregates (batch_id);
CREATE INDEX sync_aggregates_failed ON sync_aggregates (client, updated_at) WHERE status = 'failed';
CREATE INDEX sync_aggregates_unsynced ON sync_aggregates (client, oldest_rated_at) WHERE status <> 'synced';

-- The MURs no cycle has put into an aggregated record yet: what a cycle
-- reads. A MUR leaves it when its record's answer (or the hand-over of a
-- batch without an answer) stamps its aggregate_id, in the same update
-- that sets its sync_status.
DROP INDEX murs_unsynced;
CREATE INDEX murs_unaggregated ON murs (client, usage_time) WHERE aggregate_id IS NULL;

-- +goose Down
DROP INDEX murs_unaggregated;
CREATE INDEX murs_unsynced ON murs (client, usage_time) WHERE sync_status = 'unsynced';
DROP TABLE sync_aggregates;
DROP TABLE sync_batches;
DROP TABLE sync_jobs;
