-- +goose Up
-- The waits_for index is probed with a batch's worth of keys after every
-- applied batch. With GIN's fast update on, new entries sit in an unsorted
-- pending list that each probe key scans in full, so one probe of 500 keys
-- took a second once the list had filled; written straight into the tree,
-- the same probe takes milliseconds.
ALTER INDEX catalog_events_waits_for SET (fastupdate = off);

-- +goose Down
ALTER INDEX catalog_events_waits_for RESET (fastupdate);
