-- Issue 17: exact job counts per queue and state without scanning jobs.jobs (stats, queues, ping,
-- the STATUS= line and the metrics read them; a GROUP BY over 1,000,000 rows took 0.3-0.6 s).
--
-- Statement-level triggers with transition tables keep them: each statement that writes jobs
-- (an enqueue batch, a claim batch, a flush's finish, recovery, a bulk action, a prune batch)
-- adds one delta row per (queue, state) it changed, computed from the rows it changed. So no
-- path can forget the counters, and the cost is paid once per batch, not once per job.
-- Deltas are appended, never updated in place: concurrent statements (a claim and a finish)
-- never wait on one counter row, and no lock order between them can deadlock. The engine folds
-- the deltas into one row per (queue, state) every few seconds (store.fold_counts); a reader sums
-- the few rows left (store.state_counts).
CREATE TABLE jobs.state_counts (
    queue text   NOT NULL,
    state text   NOT NULL,
    n     bigint NOT NULL
);
-- A small table rewritten every few seconds: vacuumed after a few hundred dead rows.
ALTER TABLE jobs.state_counts SET (
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 500,
    autovacuum_vacuum_cost_delay = 0
);

CREATE FUNCTION jobs.count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO jobs.state_counts (queue, state, n)
    SELECT queue, state, count(*) FROM new_rows GROUP BY queue, state;
    RETURN NULL;
END
$$;

CREATE FUNCTION jobs.count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Rows that kept their state cancel out (HAVING): no delta for them.
    INSERT INTO jobs.state_counts (queue, state, n)
    SELECT queue, state, sum(d) FROM (
        SELECT queue, state, -1 AS d FROM old_rows
        UNION ALL
        SELECT queue, state, 1 FROM new_rows
    ) AS c
    GROUP BY queue, state HAVING sum(d) <> 0;
    RETURN NULL;
END
$$;

-- Deleting a job (prune, delete, bulk delete) takes its count and its runs' records with it.
CREATE FUNCTION jobs.count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO jobs.state_counts (queue, state, n)
    SELECT queue, state, -count(*) FROM old_rows GROUP BY queue, state;
    -- By the primary key of attempts, an index probe per id: a join the planner could turn
    -- into a scan of every record.
    DELETE FROM jobs.attempts WHERE job_id = ANY (ARRAY(SELECT id FROM old_rows));
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs.jobs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION jobs.count_inserted();
CREATE TRIGGER jobs_count_update AFTER UPDATE ON jobs.jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobs.count_updated();
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs.jobs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION jobs.count_deleted();

-- The jobs already there (the migration runs under the migration lock, before the engine starts;
-- the table lock keeps a stray writer from slipping between the count and the triggers).
LOCK TABLE jobs.jobs IN SHARE MODE;
INSERT INTO jobs.state_counts (queue, state, n)
SELECT queue, state, count(*) FROM jobs.jobs GROUP BY queue, state;

-- TRUNCATE (tests, a manual reset) fires no row-set trigger: the counts and records go with it.
CREATE FUNCTION jobs.count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM jobs.state_counts;
    TRUNCATE jobs.attempts;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_count_truncate AFTER TRUNCATE ON jobs.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs.count_truncated();
