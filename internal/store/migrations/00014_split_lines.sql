-- +goose Up
-- A line that mediation split into several records (a call into airtime
-- and roaming, say) must end as all of its parts, not as the first one to
-- be stored. The first outcome stored for any part of such a line records
-- the line here, once, and adds the extra parts to its file's
-- split_extra: a file is done when murs + exceptions + filtered reaches
-- records + split_extra.
CREATE TABLE split_lines (
    file_id    uuid        NOT NULL,
    line       bigint      NOT NULL,
    parts      int         NOT NULL CHECK (parts > 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (file_id, line)
);

ALTER TABLE files ADD COLUMN split_extra bigint NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE files DROP COLUMN split_extra;
DROP TABLE split_lines;
