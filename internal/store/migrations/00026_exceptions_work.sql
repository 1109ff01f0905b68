-- +goose Up

-- Working exceptions (docs/exceptions.md, "Working exceptions"): a person
-- edits the record (record keeps it as it arrived), reprocesses or
-- discards it; an exception whose record id later became a MUR from
-- another file or line is resolved as superseded, naming that source.
ALTER TABLE exceptions
    -- the record as it first arrived, once a reprocess failed again and
    -- record holds it as the stage saw it that time (NULL: record is it)
    ADD COLUMN arrived         jsonb,
    -- the record as a person edited it, until it is sent again and fails
    ADD COLUMN edited          jsonb,
    ADD COLUMN edited_by       text,
    ADD COLUMN edited_at       timestamptz,
    ADD COLUMN resolution      text CHECK (resolution IN ('rated', 'superseded', 'discarded')),
    ADD COLUMN reason          text,
    ADD COLUMN superseded_file uuid,
    ADD COLUMN superseded_line bigint,
    ADD COLUMN superseded_part integer;

-- The source key, led by the file: the rate stage probes it once per MUR
-- with conditions no other index of the table can use (file, line,
-- part), so its plan cannot drift onto a client's index whatever the
-- planner knows. ON CONFLICT (client, file_id, line, part) infers it as it
-- did the constraint (the column order does not matter there). It also
-- lists one file's exceptions in source order.
CREATE UNIQUE INDEX exceptions_position ON exceptions (file_id, line, part, client);
ALTER TABLE exceptions DROP CONSTRAINT exceptions_source;

-- The open exceptions of a record id, led by the record id for the same
-- reason: when a record id becomes a MUR, its other open exceptions are
-- resolved as superseded with one probe per MUR.
CREATE INDEX exceptions_open_record ON exceptions (record_id, client)
    WHERE status IN ('open', 'reprocessing') AND record_id IS NOT NULL;

-- The list, newest first (exception ids are time-ordered UUIDs, so the
-- primary key orders every client's): a client's, by status, by code and
-- by account (the account_id of the record as it failed), each read
-- backwards from the cursor, so a page costs the same at any depth. One
-- file's exceptions are listed in line order from exceptions_position.
DROP INDEX exceptions_client_status;
DROP INDEX exceptions_code;
CREATE INDEX exceptions_client_list ON exceptions (client, exception_id);
CREATE INDEX exceptions_status_list ON exceptions (client, status, exception_id);
CREATE INDEX exceptions_code_list ON exceptions (client, code, exception_id);
CREATE INDEX exceptions_account_list ON exceptions (client, (record->>'account_id'), exception_id);

-- Bulk actions (reprocess or discard by filter) run as jobs whose
-- progress can be polled.
CREATE TABLE exception_jobs (
    job_id      uuid PRIMARY KEY,
    action      text        NOT NULL CHECK (action IN ('reprocess', 'discard')),
    actor       text        NOT NULL,
    -- the clients the selection covered (NULL: every client), so that
    -- only a token covering them all sees the job
    clients     text[],
    selection   jsonb       NOT NULL,
    reason      text,
    status      text        NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'done', 'failed')),
    total       bigint      NOT NULL DEFAULT 0,
    done        bigint      NOT NULL DEFAULT 0,
    skipped     bigint      NOT NULL DEFAULT 0,
    error       text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX exception_jobs_started ON exception_jobs (started_at DESC);

-- +goose Down
DROP TABLE exception_jobs;
DROP INDEX exceptions_account_list;
DROP INDEX exceptions_code_list;
DROP INDEX exceptions_status_list;
DROP INDEX exceptions_client_list;
CREATE INDEX exceptions_code ON exceptions (client, code) WHERE status = 'open';
CREATE INDEX exceptions_client_status ON exceptions (client, status, created_at);
DROP INDEX exceptions_open_record;
ALTER TABLE exceptions ADD CONSTRAINT exceptions_source UNIQUE (client, file_id, line, part);
DROP INDEX exceptions_position;
ALTER TABLE exceptions
    DROP COLUMN superseded_part,
    DROP COLUMN superseded_line,
    DROP COLUMN superseded_file,
    DROP COLUMN reason,
    DROP COLUMN resolution,
    DROP COLUMN edited_at,
    DROP COLUMN edited_by,
    DROP COLUMN edited,
    DROP COLUMN arrived;
