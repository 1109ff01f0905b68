-- +goose Up
-- A file an operator failed on purpose (vivace files cancel): who and
-- when. Its status is 'failed' and its reason says why; the records read
-- before it was cancelled still end as MURs, exceptions or filtered
-- records and are counted, and records is set to how many were read once
-- the reader has stopped.
ALTER TABLE files ADD COLUMN cancelled_at timestamptz, ADD COLUMN cancelled_by text;
-- The files list filters by status, newest first.
CREATE INDEX files_status_received ON files (status, received_at DESC);

-- +goose Down
DROP INDEX files_status_received;
ALTER TABLE files DROP COLUMN cancelled_at, DROP COLUMN cancelled_by;
