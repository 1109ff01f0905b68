-- +goose Up
-- A posted usage that already has an outcome (its MUR, exception or
-- filtered record is stored) is never sent again, whether or not the
-- ingest stage's mark of it as sent got there first: the ingest stage
-- skips rows a rate batch is settling rather than wait for them (two
-- batches locking the same usages in different orders deadlocked, and
-- each deadlock cost the detector's second), so a settled usage may
-- stay without sent_at. The index of what is still to send leaves those
-- out.
DROP INDEX api_usage_unsent;
CREATE INDEX api_usage_unsent ON api_usage (file_id, line) WHERE sent_at IS NULL AND NOT settled;

-- +goose Down
DROP INDEX api_usage_unsent;
CREATE INDEX api_usage_unsent ON api_usage (file_id, line) WHERE sent_at IS NULL;
