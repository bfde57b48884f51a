"""`addicted-jobs import-addictedproxy`: copy a running AddictedProxy deployment's catalogue, its
Addic7ed credentials and its one-time migration states into the daemon's schema (spec 9.1).

source: the original's tables and how each maps onto ours; copy: the batched COPY pipe from one
database to the other; run: the import itself (checks, batches, resume, summary); progress: what
the operator sees meanwhile.
"""
