-- +goose Up
-- API tokens: the bearer tokens of the HTTP API (docs/api.md,
-- "Authentication"). token_id is the public part of the token; only the
-- SHA-256 of the whole token is kept. clients is the token's scope: client
-- names, or '*' alone for every client.
CREATE TABLE api_tokens (
    token_id     text        PRIMARY KEY,
    name         text        NOT NULL,
    role         text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    clients      text[]      NOT NULL CHECK (cardinality(clients) > 0),
    secret_hash  bytea       NOT NULL CHECK (length(secret_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    revoked_by   text,
    last_used_at timestamptz
);

-- The audit log: one row per human action (who, what, which target, when,
-- before and after). Tokens write theirs here; other subjects share it.
CREATE TABLE IF NOT EXISTS audit_log (
    at     timestamptz NOT NULL DEFAULT now(),
    actor  text        NOT NULL,
    action text        NOT NULL,
    target text        NOT NULL,
    client text,
    before jsonb,
    after  jsonb
);

-- +goose Down
DROP TABLE api_tokens;
