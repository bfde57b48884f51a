-- Issue 14: jobs.jobs is a queue: every job is inserted, updated twice and deleted by pruning, so
-- dead rows and dead entries at the head of the claim index pile up far faster than the stock
-- thresholds (20% of the table) expect, and each claim walks them. Vacuum it after 1% of its rows
-- (or 2,000) changed, without the cost-based sleeps, and analyse it as often: the claim's plan
-- no longer depends on statistics (store._CLAIM), the listings' estimates still do.
ALTER TABLE jobs.jobs SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.05,
    autovacuum_vacuum_cost_delay = 0
);
