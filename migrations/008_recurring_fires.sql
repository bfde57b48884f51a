-- Issue 14: recurring jobs survive a wall clock stepped back. `last_fire` alone made every slot
-- older than it unfireable, so after a clock that ran a day (or a year) ahead came back, no
-- recurring job fired until real time caught up. A fire now claims its slot here too: once a slot
-- is fired it never fires again, whatever the clock does, and a slot older than `last_fire` may
-- fire when `last_fire` lies in the future (the clock stepped back). Rows older than two days
-- (by the daemon's clock) are pruned at each fire.
CREATE TABLE jobs.recurring_fires (
    name  text        NOT NULL,
    slot  timestamptz NOT NULL,
    PRIMARY KEY (name, slot)
);
INSERT INTO jobs.recurring_fires (name, slot)
SELECT name, last_fire FROM jobs.recurring WHERE last_fire IS NOT NULL;
