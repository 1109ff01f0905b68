-- +goose Up
-- A MUR's rate_detail is written once, by the rate stage, and only ever
-- read back whole (export, API); no query looks inside it. As jsonb every
-- row's detail was parsed into PostgreSQL's binary form on insert, about a
-- third of the database's work per MUR. As json it is checked for valid
-- JSON and stored as the text the rate stage wrote. Readers cast it back
-- (rate_detail::jsonb) so that what they print is unchanged, keys in
-- jsonb's order. Existing rows are converted in place (the table is
-- rewritten once).
ALTER TABLE murs ALTER COLUMN rate_detail TYPE json USING rate_detail::json;

-- +goose Down
ALTER TABLE murs ALTER COLUMN rate_detail TYPE jsonb USING rate_detail::jsonb;
