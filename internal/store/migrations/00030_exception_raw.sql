-- +goose Up
-- The bytes of a message as a stage received it, kept with its exception
-- when they could not be read as a record (or, at the ingest stage, were
-- too large for the topics): record then holds what could be read of it,
-- and raw what arrived, byte for byte (JSON could not hold every byte
-- sequence, and a jsonb string holds no NUL).
ALTER TABLE exceptions ADD COLUMN raw bytea;

-- +goose Down
ALTER TABLE exceptions DROP COLUMN raw;
