-- Issue 19: where a node's pid means something: the kernel's boot id and the PID namespace of the
-- daemon ("<boot_id> pid:[<inode>]"). A daemon restarted on the same host and in the same PID
-- namespace finds its predecessors' rows whose pid no longer runs and declares them dead at once,
-- instead of leaving their jobs running for node_timeout_s. NULL: a node that did not say.
ALTER TABLE jobs.nodes ADD COLUMN process_space text;
