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
    -- Each outcome joined to its locked row (by primary key) in one pass, carrying the row's
    -- current state and token for the re-check: a second join of outcomes to locked rows was a
    -- nested loop over both (n^2 per flush, 16 ms for 200 outcomes).
    WITH locked AS MATERIALIZED (
        -- A join on unnest, not `id = ANY (p_ids)`: a parameter array is not hashed, and a plan
        -- that scans the table would compare each row with every id (seconds per flush).
        SELECT o.*, j.state AS row_state, j.claims AS row_claims
        FROM unnest(p_ids, p_claims, p_states, p_run_at, p_errors, p_refund)
             AS o(id, claims, state, run_at, error, refund)
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
        RETURNING j.id, j.state
    )
    SELECT array_agg(id) FILTER (WHERE state = 'succeeded'),
           array_agg(id) FILTER (WHERE state = 'deleted'),
           -- The ids left out (locked elsewhere, or gone): looked for only when some are.
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
