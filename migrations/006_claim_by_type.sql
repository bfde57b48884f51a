-- Claiming reads each job type's head of jobs_claim_by_name (store._CLAIM). The queue-wide index
-- in run_at order is dropped: the planner preferred it for "the oldest job of type X" and then
-- read the whole queue when X was rare, and every enqueue paid for a second entry.
DROP INDEX jobs.jobs_claim;
