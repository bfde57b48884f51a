-- Issue 14: status writes that no locked row can hold up, and a fencing token on every finish.
--
-- Runs claimed, never given back (unlike attempt, which recovery refunds): a finish must present
-- the value its claim returned, so a daemon that lost its database session and finishes late
-- cannot overwrite a job that was recovered and claimed again elsewhere.
ALTER TABLE jobs.jobs ADD COLUMN claims int NOT NULL DEFAULT 0;

DROP FUNCTION jobs.finish(bigint[], text[], timestamptz[], text[], int[]);

-- Record the outcomes of a batch of finished runs and release or delete their continuations.
-- Rows another session holds locked (an operator's SELECT ... FOR UPDATE) are skipped, not waited
-- for: the function returns their ids and the engine writes them again later, so one locked row
-- never holds up the other outcomes of the batch. The lock and the update go by primary key only
-- (the state and token re-check reads the locked row's values), as in store._CLAIM.
-- The release runs as a second statement on purpose: in READ COMMITTED it takes a fresh snapshot,
-- so it sees a continuation whose enqueue held the parent row (FOR SHARE) while we waited for it.
CREATE FUNCTION jobs.finish(
    p_ids bigint[], p_claims int[], p_states text[], p_run_at timestamptz[], p_errors text[],
    p_refund int[]
) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    done_ok bigint[];
    done_deleted bigint[];
    busy bigint[];
BEGIN
    WITH outcome AS (
        SELECT * FROM unnest(p_ids, p_claims, p_states, p_run_at, p_errors, p_refund)
            AS o(id, claims, state, run_at, error, refund)
    ), locked AS MATERIALIZED (
        -- A join on unnest, not `id = ANY (p_ids)`: a parameter array is not hashed, and a plan
        -- that scans the table would compare each row with every id (seconds per flush).
        SELECT j.id, j.state, j.claims FROM unnest(p_ids) AS b(id) JOIN jobs.jobs j ON j.id = b.id
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
        FROM outcome o JOIN locked l ON l.id = o.id AND l.state = 'running' AND l.claims = o.claims
        WHERE j.id = o.id
        RETURNING j.id, j.state
    )
    SELECT array_agg(id) FILTER (WHERE state = 'succeeded'),
           array_agg(id) FILTER (WHERE state = 'deleted'),
           -- NOT EXISTS, an anti-join: NOT IN on a CTE rescans it per outcome (n^2)
           (SELECT array_agg(o.id) FROM outcome o WHERE NOT EXISTS (SELECT 1 FROM locked l WHERE l.id = o.id))
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
