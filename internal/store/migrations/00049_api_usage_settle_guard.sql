-- +goose Up
-- Settling posted usages (migration 00034) probed api_usage once per row
-- of every batch of MURs, exceptions and filtered records, though only
-- the rows of an api submission can have a posted usage: about 2% of the
-- database's statement time in a run of files with no posted usage. The
-- triggers now look first at the batch's distinct files (a probe of the
-- files' key each) and settle only when one is an api submission.

-- +goose StatementBegin
CREATE FUNCTION tmf_batch_has_api(file_ids uuid[]) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM files WHERE file_id = ANY (file_ids) AND source = 'api')
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tmf_murs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF tmf_batch_has_api(ARRAY(SELECT DISTINCT file_id FROM new_rows)) THEN
        UPDATE api_usage a SET settled = true
            FROM new_rows n WHERE a.file_id = n.file_id AND a.line = n.line AND NOT a.settled;
    END IF;
    IF EXISTS (SELECT 1 FROM tmf_hubs) THEN
        INSERT INTO tmf_deliveries (hub_id, client, file_id, line, part, kind, status)
        SELECT h.hub_id, n.client, n.file_id, n.line, n.part,
            CASE WHEN EXISTS (SELECT 1 FROM api_usage a WHERE a.file_id = n.file_id AND a.line = n.line)
                   OR EXISTS (SELECT 1 FROM exceptions e WHERE e.client = n.client AND e.file_id = n.file_id
                                AND e.line = n.line AND e.part = n.part)
                 THEN 'state' ELSE 'create' END,
            CASE WHEN n.sync_status = 'synced' THEN 'billed' ELSE 'rated' END
        FROM new_rows n JOIN tmf_hubs h ON h.clients IS NULL OR n.client = ANY (h.clients)
        ORDER BY n.file_id, n.line, n.part, h.hub_id;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tmf_exceptions_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF tmf_batch_has_api(ARRAY(SELECT DISTINCT file_id FROM new_rows)) THEN
        UPDATE api_usage a SET settled = true
            FROM new_rows n WHERE a.file_id = n.file_id AND a.line = n.line AND NOT a.settled;
    END IF;
    IF EXISTS (SELECT 1 FROM tmf_hubs) THEN
        INSERT INTO tmf_deliveries (hub_id, client, file_id, line, part, kind, status)
        SELECT h.hub_id, n.client, n.file_id, n.line, n.part,
            CASE WHEN EXISTS (SELECT 1 FROM api_usage a WHERE a.file_id = n.file_id AND a.line = n.line)
                 THEN 'state' ELSE 'create' END,
            'rejected'
        FROM new_rows n JOIN tmf_hubs h ON h.clients IS NULL OR n.client = ANY (h.clients)
        ORDER BY n.file_id, n.line, n.part, h.hub_id;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tmf_filtered_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF tmf_batch_has_api(ARRAY(SELECT DISTINCT file_id FROM new_rows)) THEN
        UPDATE api_usage a SET settled = true
            FROM new_rows n WHERE a.file_id = n.file_id AND a.line = n.line AND NOT a.settled;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tmf_murs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE api_usage a SET settled = true
        FROM new_rows n WHERE a.file_id = n.file_id AND a.line = n.line AND NOT a.settled;
    IF EXISTS (SELECT 1 FROM tmf_hubs) THEN
        INSERT INTO tmf_deliveries (hub_id, client, file_id, line, part, kind, status)
        SELECT h.hub_id, n.client, n.file_id, n.line, n.part,
            CASE WHEN EXISTS (SELECT 1 FROM api_usage a WHERE a.file_id = n.file_id AND a.line = n.line)
                   OR EXISTS (SELECT 1 FROM exceptions e WHERE e.client = n.client AND e.file_id = n.file_id
                                AND e.line = n.line AND e.part = n.part)
                 THEN 'state' ELSE 'create' END,
            CASE WHEN n.sync_status = 'synced' THEN 'billed' ELSE 'rated' END
        FROM new_rows n JOIN tmf_hubs h ON h.clients IS NULL OR n.client = ANY (h.clients)
        ORDER BY n.file_id, n.line, n.part, h.hub_id;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tmf_exceptions_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE api_usage a SET settled = true
        FROM new_rows n WHERE a.file_id = n.file_id AND a.line = n.line AND NOT a.settled;
    IF EXISTS (SELECT 1 FROM tmf_hubs) THEN
        INSERT INTO tmf_deliveries (hub_id, client, file_id, line, part, kind, status)
        SELECT h.hub_id, n.client, n.file_id, n.line, n.part,
            CASE WHEN EXISTS (SELECT 1 FROM api_usage a WHERE a.file_id = n.file_id AND a.line = n.line)
                 THEN 'state' ELSE 'create' END,
            'rejected'
        FROM new_rows n JOIN tmf_hubs h ON h.clients IS NULL OR n.client = ANY (h.clients)
        ORDER BY n.file_id, n.line, n.part, h.hub_id;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tmf_filtered_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE api_usage a SET settled = true
        FROM new_rows n WHERE a.file_id = n.file_id AND a.line = n.line AND NOT a.settled;
    RETURN NULL;
END $$;
-- +goose StatementEnd

DROP FUNCTION tmf_batch_has_api(uuid[]);
