"""The bodies and arguments of the storage socket operations: `storage-get` (a stored subtitle,
byte for byte) and `storage-train-dictionary` (train on stored subtitles or a directory, see
storage_training).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path
from typing import Any, Self

import asyncpg
import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator

from addicted_jobs.catalog.subtitles import get_subtitle
from addicted_jobs.control.op import Fault, Peer, op
from addicted_jobs.control.protocol import BIGINT, OpError
from addicted_jobs.storage.base import StorageError
from addicted_jobs.storage.compression import CompressionError
from addicted_jobs.storage.samples import Requester
from addicted_jobs.storage.store import SubtitleStore
from addicted_jobs.storage.training import DEFAULT_TRAINING, NotEnoughSamples, TrainingOptions
from addicted_jobs.tasks.storage_training import (
    MAX_SAMPLES,
    EnqueueMany,
    gather_and_train,
    queue_plain_migrations,
)

log = structlog.get_logger(__name__)

GET_OP = "storage-get"
TRAIN_OP = "storage-train-dictionary"
# Smaller than the job's default: the reply must come within [control] request_timeout_s (30 s),
# and a 256 KiB dictionary takes ~15 s to train on 1000 subtitles on two cores.
OP_DEFAULT_SAMPLES = 1000
# One reply carries at most this many bytes of a file (base64: 4/3 of it), under [control]
# max_reply_bytes; bigger files come in parts. Decompressed objects held at once are bounded by
# GETS_AT_ONCE x [storage] max_object_bytes.
PART_BYTES = 4 * 1024 * 1024
GETS_AT_ONCE = 2
UNAVAILABLE = Fault("unavailable", "storage unavailable: ")
__all__ = [
    "GET_OP",
    "TRAIN_OP",
    "GetArgs",
    "StorageOps",
    "TrainArgs",
    "storage_get",
    "storage_train",
]


class SubtitleNotFound(LookupError):
    pass


class NotStored(LookupError):
    pass


async def storage_get(
    pool: asyncpg.Pool,
    store: SubtitleStore,
    subtitle_id: int,
    offset: int = 0,
    length: int = PART_BYTES,
) -> dict[str, Any]:
    """A part of the stored file of a subtitle, decompressed: base64 `content` of the bytes from
    `offset` (at most `length`, at most PART_BYTES), the whole file's `size` and `sha256`, and
    `more` when bytes follow. One reply line stays a few MiB whatever the object's size."""
    row = await get_subtitle(pool, subtitle_id)
    if row is None:
        raise SubtitleNotFound(f"no subtitle with id {subtitle_id}")
    if row.storage_path is None:
        raise NotStored(
            f"subtitle {subtitle_id} is not stored yet; "
            f"`addicted-jobs enqueue download_subtitle subtitle_id={subtitle_id}` fetches it"
        )
    data = await store.read(row.storage_path)
    if data is None:
        raise NotStored(f"subtitle {subtitle_id}: object {row.storage_path} is missing")
    if offset > len(data):
        raise ValueError(f"offset {offset} is past the end of the file ({len(data)} bytes)")
    end = min(len(data), offset + min(length, PART_BYTES))
    part = data[offset:end]
    return {
        "subtitle_id": row.id,
        "unique_id": str(row.unique_id),
        "path": row.storage_path,
        "stored_at": row.stored_at.isoformat() if row.stored_at else None,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "encoding": "base64",
        "offset": offset,
        "more": end < len(data),
        "content": base64.b64encode(part).decode("ascii"),
    }


class GetArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    subtitle_id: int = Field(ge=1, le=BIGINT)
    offset: int = Field(default=0, ge=0, le=BIGINT)
    length: int = Field(default=PART_BYTES, ge=1, le=PART_BYTES)


class TrainArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    from_stored: int | None = Field(default=None, ge=1, le=MAX_SAMPLES)
    from_dir: str | None = Field(default=None, min_length=1, max_length=4096)
    dry_run: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.from_dir is not None and self.from_stored is not None:
            raise ValueError("give from_stored or from_dir, not both")
        if self.from_dir is not None and not Path(self.from_dir).is_absolute():
            raise ValueError("from_dir must be an absolute path (the daemon reads it)")
        return self


def _inside(path: Path, directory: Path | None) -> bool:
    if directory is None:
        return False
    return path.resolve().is_relative_to(directory.resolve())


async def storage_train(
    store: SubtitleStore,
    args: TrainArgs,
    peer: Peer,
    *,
    options: TrainingOptions = DEFAULT_TRAINING,
    enqueue_many: EnqueueMany | None = None,
    training_dir: Path | None = None,
) -> dict[str, Any]:
    """Train (and unless dry_run adopt) a dictionary; the report as a dict. With `enqueue_many`
    (the engine's), adopting a first dictionary queues the plain objects' migration, as the
    train_dictionary job does. `from_dir` reads only what the requesting peer (SO_PEERCRED uid)
    may read, except under `training_dir` ([storage] training_dir), which the operator opened to
    every socket user. Raises NotEnoughSamples, StorageError, ValueError (an unusable from_dir),
    CompressionError, and OpError(invalid_args) when the peer's uid is unknown."""
    from_dir = Path(args.from_dir) if args.from_dir else None
    requester = None
    if from_dir is not None and not _inside(from_dir, training_dir):
        if peer.uid is None:
            raise OpError(
                "invalid_args",
                "from_dir: the requester's identity is unknown (no SO_PEERCRED); only "
                "[storage] training_dir may be used",
            )
        requester = Requester.of_uid(peer.uid)
    report = await gather_and_train(
        store,
        limit=args.from_stored or OP_DEFAULT_SAMPLES,
        from_dir=from_dir,
        requester=requester,
        adopt=not args.dry_run,
        options=options,
    )
    log.info("dictionary trained on request", **report.as_dict())
    answer = report.as_dict()
    if enqueue_many is not None and report.adopted and report.previous_id is None:
        answer["migrations_queued"] = await queue_plain_migrations(store, enqueue_many)
    return answer


class StorageOps:
    """`storage-get` and `storage-train-dictionary` on `store`; see storage_train for
    `enqueue_many` and `training_dir`."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        store: SubtitleStore,
        *,
        options: TrainingOptions = DEFAULT_TRAINING,
        enqueue_many: EnqueueMany | None = None,
        training_dir: Path | None = None,
    ) -> None:
        self.pool = pool
        self.store = store
        self.options = options
        self.enqueue_many = enqueue_many
        self.training_dir = training_dir
        self._gets = asyncio.Semaphore(GETS_AT_ONCE)

    @op(
        GET_OP,
        GetArgs,
        read_only=True,
        errors={
            LookupError: Fault("not_found"),  # no such subtitle, or not stored
            ValueError: Fault("invalid_args"),  # offset past the end
            StorageError: UNAVAILABLE,
            CompressionError: Fault("internal", "stored object unreadable: "),
        },
    )
    async def get(self, args: GetArgs, peer: Peer) -> dict[str, Any]:
        async with self._gets:
            return await storage_get(
                self.pool, self.store, args.subtitle_id, args.offset, args.length
            )

    @op(
        TRAIN_OP,
        TrainArgs,
        audit=("from_stored", "dry_run"),
        errors={
            NotEnoughSamples: Fault("conflict"),  # a ValueError: listed before it
            StorageError: UNAVAILABLE,
            ValueError: Fault("invalid_args"),  # from_dir missing, not a directory, unreadable
            CompressionError: Fault("invalid_args"),  # samples zstd cannot train on
        },
    )
    async def train(self, args: TrainArgs, peer: Peer) -> dict[str, Any]:
        return await storage_train(
            self.store,
            args,
            peer,
            options=self.options,
            enqueue_many=self.enqueue_many,
            training_dir=self.training_dir,
        )
