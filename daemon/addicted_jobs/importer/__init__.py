"""`addicted-jobs import-addictedproxy`: copy a running AddictedProxy deployment's catalogue, its
Addic7ed credentials and its one-time migration states into the daemon's schema (spec 9.1).

source: the original's tables and how each maps onto ours; copy: one batch through a binary COPY
pipe from one database to the other; table: one table in stripes of ids, copied by lanes side by
side; run: the import itself (checks, snapshot, lanes, summary); progress: what the operator sees.
"""
