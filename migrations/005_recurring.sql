-- Recurring (cron) jobs: the newest scheduled slot each one has fired. A fire claims its slot
-- here in the same transaction as the job's insert, so a slot never fires twice, across
-- restarts and under a double fire.
CREATE TABLE jobs.recurring (
    name          text PRIMARY KEY,
    last_fire     timestamptz,                       -- newest scheduled slot enqueued
    last_job_id   bigint,                            -- the job that fire (or trigger) produced
    last_trigger  timestamptz,                       -- last manual `trigger`
    created_at    timestamptz NOT NULL DEFAULT now() -- slots before this were never missed
);
