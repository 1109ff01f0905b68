-- +goose Up
-- The audit log (created with the API tokens, 00022) gets what its
-- readers need: an id for each entry (a stable key to page by), entries
-- timed when they are written rather than when their transaction began
-- (changes serialised by a lock then sort in the order they were made),
-- and indexes for the newest entries, a target's history and a client's.
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS audit_id uuid NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE audit_log ADD CONSTRAINT audit_log_pkey PRIMARY KEY (audit_id);
ALTER TABLE audit_log ALTER COLUMN at SET DEFAULT clock_timestamp();
CREATE INDEX audit_log_at ON audit_log (at DESC, audit_id DESC);
CREATE INDEX audit_log_target ON audit_log (target, at DESC);
CREATE INDEX audit_log_client ON audit_log (client, at DESC) WHERE client IS NOT NULL;

-- +goose Down
DROP INDEX audit_log_client;
DROP INDEX audit_log_target;
DROP INDEX audit_log_at;
ALTER TABLE audit_log ALTER COLUMN at SET DEFAULT now();
ALTER TABLE audit_log DROP CONSTRAINT audit_log_pkey;
ALTER TABLE audit_log DROP COLUMN audit_id;
