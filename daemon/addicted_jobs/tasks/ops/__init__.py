"""The subtitle domain's socket operations (SUBTITLE_OPS), one @op record each: request-subtitles
(catalogue.py), credentials-add, -list, -remove (credentials.py), storage-get and
storage-train-dictionary (storage.py). Each module holds its operations' bodies, argument models
and the small class whose methods are the declared handlers.

Error codes follow the protocol's vocabulary: an argument the op refuses on inspection (an
unknown language, an unusable cookie, an offset past the end, an unreadable from_dir) is
invalid_args; something named that does not exist is not_found; storage down is unavailable.
"""

from __future__ import annotations

from pathlib import Path

from addicted_jobs.control.op import Op, bind, declared
from addicted_jobs.storage.store import SubtitleStore
from addicted_jobs.tasks.ops.catalogue import CatalogueOps, Enqueue
from addicted_jobs.tasks.ops.credentials import CredentialOps
from addicted_jobs.tasks.ops.storage import StorageOps
from addicted_jobs.tasks.resources import Resources
from addicted_jobs.tasks.storage_training import EnqueueMany

# Every domain operation, handlers unbound.
SUBTITLE_OPS: list[Op] = [
    *declared(CatalogueOps),
    *declared(CredentialOps),
    *declared(StorageOps),
]


def subtitle_ops(
    resources: Resources,
    store: SubtitleStore,
    *,
    enqueue: Enqueue,
    enqueue_many: EnqueueMany,
    training_dir: Path | None,
) -> list[Op]:
    """Every domain operation, bound to this daemon's resources, store and engine."""
    return [
        *bind(CatalogueOps(resources, enqueue)),
        *bind(CredentialOps(resources.pool)),
        *bind(
            StorageOps(resources.pool, store, enqueue_many=enqueue_many, training_dir=training_dir)
        ),
    ]
