-- Issue 20: jobs.finish keeps the generic plans of its statements for the session, with
-- sequential scans priced out, whichever pool calls it. The flusher calls it on the engine pool,
-- whose force_custom_plan (db.ENGINE_SERVER_SETTINGS) made PostgreSQL plan every statement inside
-- it again on every flush, a few hundred times a second in a drain: measured on 60,000 no-op jobs
-- (/tmp A/B, same box, two rounds), PostgreSQL CPU per job 0.087 -> 0.064 and 0.075 -> 0.050 ms,
-- steady drain 11.8k -> 13.6k and 13.7k -> 17.0k jobs/s.
-- The trap force_custom_plan guards against (a generic plan made on a tiny table that reads the
-- grown table in full) is closed as for the claim pool (db.CLAIM_SERVER_SETTINGS): every access
-- to jobs.jobs in it, and in jobs.delete_continuations and the triggers it fires, has an index
-- (the primary key; jobs_children for continuations), which enable_seqscan = off makes the
-- planner keep however small the table was (tests/integration/jobs/test_claim_plans.py).
-- A SET on the function applies while it runs, including to the functions it calls. A later
-- CREATE OR REPLACE of jobs.finish replaces its SET clauses: it must repeat them (the test fails).
ALTER FUNCTION jobs.finish(bigint[], int[], text[], timestamptz[], text[], int[], text[], float8[])
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION jobs.finish(bigint[], int[], text[], timestamptz[], text[], int[], text[], float8[])
    SET enable_seqscan = off;
-- The same for jobs.delete_continuations, which jobs.finish calls and the operators' delete and
-- bulk actions call on the client pool: the function's plans are cached once per session for
-- every caller, so a plan made outside jobs.finish would otherwise be the one it reuses.
ALTER FUNCTION jobs.delete_continuations(bigint[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION jobs.delete_continuations(bigint[]) SET enable_seqscan = off;
