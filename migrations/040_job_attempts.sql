-- Issue 17: every run of a job is kept, one row per claim. The rows are written by the engine's
-- batched statements, never one statement per job: jobs.finish writes the runs a flush ends
-- (from its arrays, in the same statement as the outcomes), store._RECOVER the runs a dead daemon
-- left behind. A run still going is the job row itself (state running, started_at, claimed_by).
--
-- Who claimed the current run, as "pid@host" (the daemon's addicted_jobs.runner setting, see
-- db.SERVER_SETTINGS): set by store._CLAIM, so the record names the daemon that ran it even
-- when that daemon died and another one recovers the job.
ALTER TABLE jobs.jobs ADD COLUMN claimed_by text;
-- When an operator last retried the job (retry, retry --state ...): a point of the timeline.
ALTER TABLE jobs.jobs ADD COLUMN retried_at timestamptz;

CREATE TABLE jobs.attempts (
    job_id      bigint      NOT NULL,  -- no foreign key: checking it would cost every finish a
                                       -- lookup; jobs_attempts_gone deletes them with the job
    attempt     int         NOT NULL,  -- jobs.claims of the run: 1, 2, ..., never reset or refunded
    counted     int         NOT NULL,  -- jobs.attempt during the run (what max_attempts limits)
    due_at      timestamptz NOT NULL,  -- when the job was due (its run_at when claimed)
    started_at  timestamptz NOT NULL,  -- when it was claimed
    finished_at timestamptz NOT NULL,
    duration_s  float8,                -- measured by the runner; NULL when it never ran or died
    outcome     text        NOT NULL,  -- succeeded, skipped, retry, failed, deleted, cancelled,
                                       -- interrupted (shutdown), returned (never started), crashed
    state_after text        NOT NULL,  -- the job's state this run left it in
    error       text,                  -- summary line and traceback (runner.ERROR_TEXT_LIMIT)
    refunded    boolean     NOT NULL,  -- the daemon gave the attempt back (shutdown, crash)
    pid         int,
    host        text,
    PRIMARY KEY (job_id, attempt)
);
-- The recent failures `stats` and `top` show: only failed runs are in it, so it stays small and
-- the newest are read from its end whatever the number of jobs retained.
CREATE INDEX attempts_failed ON jobs.attempts (finished_at) WHERE error IS NOT NULL;
ALTER TABLE jobs.attempts SET (autovacuum_vacuum_insert_scale_factor = 0.05);

DROP FUNCTION jobs.finish(bigint[], int[], text[], timestamptz[], text[], int[]);

-- As in 007_finish_skip_locked.sql, plus the record of each run: p_outcomes (the runner's
-- outcome label) and p_durations (seconds) go into jobs.attempts with the values the locked
-- rows carry (claims, attempt, run_at, started_at, claimed_by), in the same statement.
CREATE FUNCTION jobs.finish(
    p_ids bigint[], p_claims int[], p_states text[], p_run_at timestamptz[], p_errors text[],
    p_refund int[], p_outcomes text[], p_durations float8[]
) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    done_ok bigint[];
    done_deleted bigint[];
    busy bigint[];
BEGIN
    WITH locked AS MATERIALIZED (
        SELECT o.*, j.state AS row_state, j.claims AS row_claims, j.attempt AS row_attempt,
               j.run_at AS row_run_at, j.started_at AS row_started, j.claimed_by AS row_runner
        FROM unnest(p_ids, p_claims, p_states, p_run_at, p_errors, p_refund, p_outcomes, p_durations)
             AS o(id, claims, state, run_at, error, refund, outcome, duration)
        JOIN jobs.jobs j ON j.id = o.id
        FOR UPDATE OF j SKIP LOCKED
    ), updated AS (
        UPDATE jobs.jobs j SET
            state = o.state,
            run_at = coalesce(o.run_at, j.run_at),
            last_error = CASE WHEN o.state = 'succeeded' THEN j.last_error ELSE coalesce(o.error, j.last_error) END,
            attempt = j.attempt - o.refund,
            finished_at = CASE WHEN o.state IN ('succeeded', 'failed', 'deleted') THEN now() END,
            unique_key = CASE WHEN o.state IN ('succeeded', 'failed', 'deleted') THEN NULL ELSE j.unique_key END,
            unique_until = CASE WHEN o.state IN ('succeeded', 'failed', 'deleted') THEN NULL ELSE j.unique_until END
        FROM locked o
        WHERE j.id = o.id AND o.row_state = 'running' AND o.row_claims = o.claims
        RETURNING j.id, j.state, o.claims, o.row_attempt, o.row_run_at, o.row_started,
                  o.row_runner, o.duration, o.outcome, o.error, o.refund
    ), recorded AS (
        -- ON CONFLICT: a run is recorded once (the fencing token makes a second finish of the
        -- same run impossible; a conflict must never fail a whole flush).
        INSERT INTO jobs.attempts (job_id, attempt, counted, due_at, started_at, finished_at,
                                   duration_s, outcome, state_after, error, refunded, pid, host)
        SELECT u.id, u.claims, u.row_attempt, u.row_run_at, coalesce(u.row_started, now()), now(),
               u.duration, coalesce(u.outcome, u.state), u.state, u.error, u.refund > 0,
               nullif(split_part(u.row_runner, '@', 1), '')::int,
               nullif(split_part(u.row_runner, '@', 2), '')
        FROM updated u
        ON CONFLICT DO NOTHING
    )
    SELECT array_agg(id) FILTER (WHERE state = 'succeeded'),
           array_agg(id) FILTER (WHERE state = 'deleted'),
           CASE WHEN (SELECT count(*) FROM locked) < cardinality(p_ids) THEN
               (SELECT array_agg(b.id) FROM unnest(p_ids) AS b(id)
                WHERE NOT EXISTS (SELECT 1 FROM locked l WHERE l.id = b.id)
                  AND EXISTS (SELECT 1 FROM jobs.jobs j WHERE j.id = b.id))
           END
    INTO done_ok, done_deleted, busy FROM updated;

    IF done_ok IS NOT NULL THEN
        UPDATE jobs.jobs SET state = 'ready', run_at = now()
        WHERE parent_id = ANY (done_ok) AND state = 'awaiting';
    END IF;
    IF done_deleted IS NOT NULL THEN
        PERFORM jobs.delete_continuations(done_deleted);
    END IF;
    RETURN coalesce(busy, '{}');
END
$$;
