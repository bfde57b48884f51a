-- Progress of `addicted-jobs import-addictedproxy` (daemon/importer), one row per source table:
-- the highest source "Id" copied so far, written in the same transaction as the batch it ends,
-- so a run killed at any point resumes after the last committed batch and never copies twice.
CREATE TABLE addictedproxy_import (
    source_table  text        PRIMARY KEY,   -- the original's table name, e.g. 'Subtitles'
    last_id       bigint      NOT NULL DEFAULT 0,
    copied        bigint      NOT NULL DEFAULT 0 CHECK (copied >= 0),
    -- rows the target refused (a conflicting natural key, a parent that was not copied)
    skipped       bigint      NOT NULL DEFAULT 0 CHECK (skipped >= 0),
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
