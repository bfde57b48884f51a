-- Progress of `addicted-jobs import-addictedproxy` (daemon/importer): one row per stripe of each
-- source table. A big table is cut, at its first run, into stripes of "Id" ranges copied side by
-- side; each row holds the highest source "Id" of its stripe copied so far, written in the same
-- transaction as the batch it ends, so a run killed at any point resumes after the last committed
-- batch of every stripe and never copies a row twice.
CREATE TABLE addictedproxy_import (
    source_table  text        NOT NULL,      -- the original's table name, e.g. 'Subtitles'
    stripe        int         NOT NULL DEFAULT 0,
    last_id       bigint      NOT NULL DEFAULT 0,
    until_id      bigint,                    -- the stripe's last "Id"; NULL: no upper bound
    copied        bigint      NOT NULL DEFAULT 0 CHECK (copied >= 0),
    -- rows the target refused (a conflicting id or natural key, a parent that was not copied)
    skipped       bigint      NOT NULL DEFAULT 0 CHECK (skipped >= 0),
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_table, stripe)
);
