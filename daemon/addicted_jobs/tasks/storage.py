"""The storage jobs: download_subtitle (credential rotation, spec 4.4), store_subtitle (spec 1.12),
migrate_compression (rewrite an object in the current format) and train_dictionary.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_validator

from addicted_jobs.catalog.subtitles import (
    SubtitleRow,
    count_download,
    delete_subtitle,
    get_subtitle,
    mark_stored,
)
from addicted_jobs.jobs import DEFAULT_RETRY, JobContext, JobSpec, Registry, RetryPolicy
from addicted_jobs.settings import FETCH_SUBTITLES_QUEUE, STORE_SUBTITLE_QUEUE
from addicted_jobs.storage.base import validate_key
from addicted_jobs.storage.store import SubtitleStore
from addicted_jobs.storage.training import DEFAULT_TRAINING, NotEnoughSamples, TrainingOptions
from addicted_jobs.tasks.resources import Resources
from addicted_jobs.tasks.storage_training import (
    DEFAULT_SAMPLES,
    MAX_SAMPLES,
    MIGRATE_JOB,
    TRAIN_JOB,
    AutoTrain,
    gather_and_train,
    queue_plain_migrations,
)
from addicted_jobs.upstream.errors import DownloadLimitExceeded, SubtitleFileDeleted

DOWNLOAD, STORE, MIGRATE, TRAIN = "download_subtitle", "store_subtitle", MIGRATE_JOB, TRAIN_JOB
MAX_BLOB_BYTES = 8 * 1024 * 1024  # subtitles are tens of KB; the blob travels in the job row
DOWNLOAD_ATTEMPTS = 3
ROTATION_PAUSE = 0.1


def _decode_blob(value: object) -> bytes:
    # Python callers hand bytes; JSON (socket, job rows) carries base64 text.
    if isinstance(value, bytes | bytearray):
        data = bytes(value)
    elif isinstance(value, str):
        if len(value) > (MAX_BLOB_BYTES + 2) // 3 * 4:
            raise ValueError(f"blob is larger than {MAX_BLOB_BYTES} bytes")
        try:
            data = base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"blob is not valid base64: {exc}") from None
    else:
        raise ValueError("blob must be the file's bytes in base64")
    if not data or len(data) > MAX_BLOB_BYTES:
        raise ValueError(f"blob must hold 1 to {MAX_BLOB_BYTES} bytes, not {len(data)}")
    return data


Blob = Annotated[
    bytes,
    BeforeValidator(_decode_blob),
    PlainSerializer(lambda b: base64.b64encode(b).decode("ascii"), when_used="json"),
]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class SubtitleArgs(_Args):
    subtitle_id: int = Field(ge=1, le=2**63 - 1)


class StoreArgs(SubtitleArgs):
    blob: Blob


class MigrateArgs(_Args):
    path: str

    @field_validator("path")
    @classmethod
    def _clean_key(cls, value: str) -> str:
        return validate_key(value)


class TrainArgs(_Args):
    samples: int = Field(default=DEFAULT_SAMPLES, ge=1, le=MAX_SAMPLES)


class DownloadQuotaExhausted(RuntimeError):
    """Every attempt hit a download limit; retried later, once quota checks clear credentials."""


class StorageJobs:
    def __init__(
        self,
        resources: Resources,
        store: SubtitleStore,
        auto_train: AutoTrain,
        training: TrainingOptions,
        rotation_pause: float,
    ) -> None:
        self.r = resources
        self.store = store
        self.auto_train = auto_train
        self.training = training
        self.rotation_pause = rotation_pause

    async def store_subtitle(self, ctx: JobContext, args: StoreArgs) -> None:
        row = await get_subtitle(self.r.pool, args.subtitle_id)
        if row is None:
            ctx.log.warning("no such subtitle; nothing stored", subtitle_id=args.subtitle_id)
            return
        key = row.key
        # Upload first: a failed or cut-off upload raises before anything is recorded.
        size = await self.store.write(key, args.blob)
        if not await mark_stored(self.r.pool, row.id, key):
            ctx.log.warning("subtitle deleted while it was stored", subtitle_id=row.id)
            await self.store.delete(key)
            return
        if row.storage_path and row.storage_path != key:
            # The episode moved (a show merge): the row points at the new object now.
            await self.store.delete(row.storage_path)
        ctx.log.info(
            "subtitle stored", subtitle_id=row.id, path=key, size=len(args.blob), stored=size
        )
        await self.auto_train.stored(ctx.enqueue)

    async def download_subtitle(self, ctx: JobContext, args: SubtitleArgs) -> None:
        row = await get_subtitle(self.r.pool, args.subtitle_id)
        if row is None:
            ctx.log.warning("no such subtitle; nothing downloaded", subtitle_id=args.subtitle_id)
            return
        if row.storage_path and await self.store.holds(row.storage_path):
            ctx.log.info("subtitle already stored", subtitle_id=row.id, path=row.storage_path)
            return
        try:
            content = await self._download(ctx, row)
        except SubtitleFileDeleted as exc:
            await delete_subtitle(self.r.pool, row.id)
            ctx.log.warning(
                "subtitle deleted from Addic7ed; row removed",
                subtitle_id=row.id,
                location=exc.location,
            )
            return
        if not row.completed:
            ctx.log.info("subtitle not completed; not stored", subtitle_id=row.id)
        elif not content or len(content) > MAX_BLOB_BYTES:
            ctx.log.error("download is empty or too large; not stored", size=len(content))
        else:
            # Stored by its own job: an S3 outage then retries the upload, never the download.
            await ctx.enqueue(STORE, StoreArgs(subtitle_id=row.id, blob=content))
        # Last, so a failure before it is retried without counting twice.
        await count_download(self.r.pool, row.id)
        ctx.log.info("subtitle downloaded", subtitle_id=row.id, size=len(content))

    async def _download(self, ctx: JobContext, row: SubtitleRow) -> bytes:
        tried: list[str] = []
        limit: DownloadLimitExceeded | None = None
        for attempt in range(DOWNLOAD_ATTEMPTS):
            if attempt:
                await asyncio.sleep(self.rotation_pause)
            # Leaving the block counts a download use, and queues the quota check if exceeded.
            async with self.r.credentials.downloading() as credential:
                cookie = credential.cookie if credential else None
                try:
                    return await self.r.addic7ed.download(cookie, row.download_uri)
                except DownloadLimitExceeded as exc:
                    limit = exc
                    tried.append(f"credential {credential.id}" if credential else "anonymous")
                    if credential is not None:
                        await self.r.credentials.mark_exceeded(credential.id)
                    ctx.log.info("download limit reached; rotating", used=tried[-1])
        raise DownloadQuotaExhausted(
            f"download limit exceeded on {DOWNLOAD_ATTEMPTS} attempts ({', '.join(tried)}) "
            f"for subtitle {row.id}"
        ) from limit

    async def migrate_compression(self, ctx: JobContext, args: MigrateArgs) -> None:
        """Rewrite one object in the current format (spec 1.13); see SubtitleStore.migrate."""
        path = args.path
        done = await self.store.migrate(path)
        if done.outcome == "missing":
            ctx.log.error("no object to migrate", path=path)
        elif done.outcome == "superseded":
            ctx.log.info("legacy object superseded; deleted", path=path, current=done.target)
        elif done.outcome == "current":
            ctx.log.info("object already in the current format", path=path)
        elif done.outcome == "unreadable":
            ctx.log.error("object unreadable; left as it is", path=path, error=done.error)
        else:
            ctx.log.info(
                "object migrated",
                path=path,
                to=done.target,
                old_size=done.old_size,
                new_size=done.new_size,
            )

    async def train_dictionary(self, ctx: JobContext, args: TrainArgs) -> None:
        try:
            report = await gather_and_train(self.store, limit=args.samples, options=self.training)
        except NotEnoughSamples as exc:
            ctx.log.warning("not enough stored subtitles to train on", reason=str(exc))
            return
        finally:
            self.auto_train.trained()
        ctx.log.info("dictionary trained", **report.as_dict())
        if report.adopted and report.previous_id is None:
            await queue_plain_migrations(self.store, ctx.enqueue_many)


def register_storage_jobs(
    registry: Registry,
    resources: Resources,
    store: SubtitleStore,
    *,
    train_after: int = 1000,
    training: TrainingOptions = DEFAULT_TRAINING,
    retry: RetryPolicy = DEFAULT_RETRY,
    rotation_pause: float = ROTATION_PAUSE,
) -> None:
    """Declare the storage jobs. `train_after` ([storage] train_after; 0 disables) is how many
    stored subtitles trigger a training; `retry` is there for tests that cannot wait minutes."""
    jobs = StorageJobs(resources, store, AutoTrain(store, train_after), training, rotation_pause)
    specs: list[JobSpec[Any]] = [
        JobSpec(
            DOWNLOAD,
            FETCH_SUBTITLES_QUEUE,
            SubtitleArgs,
            jobs.download_subtitle,
            unique_key=lambda a: str(a.subtitle_id),
            retry=retry,
            description="download a subtitle with credential rotation, then store it",
        ),
        JobSpec(
            STORE,
            STORE_SUBTITLE_QUEUE,
            StoreArgs,
            jobs.store_subtitle,
            retry=retry,
            lock_key=lambda a: str(a.subtitle_id),
            lock_mode="try",
            description="compress and store a subtitle file, record its storage path",
        ),
        JobSpec(
            MIGRATE,
            STORE_SUBTITLE_QUEUE,
            MigrateArgs,
            jobs.migrate_compression,
            unique_key=lambda a: a.path,
            retry=retry,
            lock_key=lambda a: a.path,
            description="rewrite a stored object in the current format",
        ),
        JobSpec(
            TRAIN,
            STORE_SUBTITLE_QUEUE,
            TrainArgs,
            jobs.train_dictionary,
            unique_key=lambda a: "train",
            retry=retry,
            lock_key=lambda a: "train",
            description="train a compression dictionary on stored subtitles",
        ),
    ]
    for spec in specs:
        registry.register(spec)
