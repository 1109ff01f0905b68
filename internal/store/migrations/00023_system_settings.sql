-- +goose Up
-- Settings that are not per client (mur_sync.batch_size, …). A key that
-- has no row has its default, which lives in the code; a row holds a
-- value someone set, who set it and when. Every change is also in
-- audit_log.
CREATE TABLE system_settings (
    key        text        PRIMARY KEY,
    value      jsonb       NOT NULL,
    updated_by text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE system_settings;
