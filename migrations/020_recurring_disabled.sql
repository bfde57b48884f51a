-- An operator's `recurring disable NAME`: kept here rather than in the config file so that it
-- survives restarts and reloads, and `recurring enable NAME` undoes it. A configuration entry
-- with enabled = false stays off whatever this says.
ALTER TABLE jobs.recurring
    ADD COLUMN disabled_at timestamptz,   -- when an operator disabled it; NULL: not disabled
    ADD COLUMN disabled_by text;          -- who (uid and pid of the peer), for the listing
