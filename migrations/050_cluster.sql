-- Issue 19: several daemons on one database. Each daemon with [cluster] enabled registers as a
-- node and heartbeats; a live node declares one whose heartbeat is older than the timeout dead
-- (dead_at) and puts the jobs it was running back to ready. Times are the database's clock, so
-- hosts with skewed clocks still agree on who is late.
CREATE TABLE jobs.nodes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host        text NOT NULL,
    pid         int NOT NULL,
    version     text NOT NULL,
    started     timestamptz NOT NULL DEFAULT now(),
    heartbeat   timestamptz NOT NULL DEFAULT now(),
    dead_at     timestamptz
);

-- The node whose claim put a job in `running` (NULL: claimed with clustering off). Only read for
-- running rows, through jobs_running.
ALTER TABLE jobs.jobs ADD COLUMN node_id bigint;
