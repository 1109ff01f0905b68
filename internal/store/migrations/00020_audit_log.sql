-- +goose Up
-- Every change a person makes (a system setting, a resend of MURs to the
-- core, later exceptions, tokens…) leaves one row: who, what they did, to
-- what, the state before and after, and when. Rows are only ever added.
CREATE TABLE audit_log (
    audit_id uuid        PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- who: "operator:<name>" from the command line or API, "system" for
    -- changes Vivace makes on its own account.
    actor    text        NOT NULL CHECK (actor <> ''),
    -- what: a dotted verb such as setting.set or sync.retry.
    action   text        NOT NULL CHECK (action <> ''),
    -- to what: "<kind>:<id>", e.g. setting:mur_sync.batch_size.
    target   text        NOT NULL CHECK (target <> ''),
    -- the client (tenant) concerned, when there is one.
    client   text,
    before   jsonb,
    after    jsonb
);
CREATE INDEX audit_log_at ON audit_log (at DESC, audit_id DESC);
CREATE INDEX audit_log_target ON audit_log (target, at DESC);
CREATE INDEX audit_log_client ON audit_log (client, at DESC) WHERE client IS NOT NULL;

-- +goose Down
DROP TABLE audit_log;
