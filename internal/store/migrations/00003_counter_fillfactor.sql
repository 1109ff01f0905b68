-- +goose Up
-- Counters and allowance use are rewritten by every batch that touches
-- them. Room left on each page lets PostgreSQL update a row in place of
-- its page (a HOT update) without a new primary-key index entry, which
-- halves the cost of saving them.
ALTER TABLE usage_counters SET (fillfactor = 50);
ALTER TABLE allowance_usage SET (fillfactor = 50);

-- +goose Down
ALTER TABLE usage_counters RESET (fillfactor);
ALTER TABLE allowance_usage RESET (fillfactor);
