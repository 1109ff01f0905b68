-- +goose Up
-- Lookup tables for the vivace_lookup mediation rule: per client, named
-- tables from a key (a phone number, say) to one or more values (account
-- id, region), loaded from CSV with `vivace lookup load`. value holds the
-- file's value columns as a JSON object of strings, so one key can enrich
-- several fields and a table's columns can change between loads.
CREATE TABLE lookup_entries (
    client     text        NOT NULL,
    lookup     text        NOT NULL,
    key        text        NOT NULL,
    value      jsonb       NOT NULL CHECK (jsonb_typeof(value) = 'object'),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client, lookup, key)
);

-- +goose Down
DROP TABLE lookup_entries;
