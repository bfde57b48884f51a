"""Dictionary training as the daemon runs it: samples gathered from stored subtitles (or a
directory, storage.samples), handed to storage.training (train, measure, adopt), the plain
objects' migration after a first dictionary, and the trigger that queues the train_dictionary job
by itself.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from addicted_jobs.catalog.subtitles import count_stored, sample_stored, stored_before
from addicted_jobs.jobs import JobRequest
from addicted_jobs.storage.compression import CompressionError
from addicted_jobs.storage.samples import Requester, directory_samples
from addicted_jobs.storage.store import SubtitleStore
from addicted_jobs.storage.training import (
    DEFAULT_TRAINING,
    NotEnoughSamples,
    TrainingOptions,
    TrainingReport,
    train_and_adopt,
)

log = structlog.get_logger(__name__)

DEFAULT_SAMPLES = 2000
MAX_SAMPLES = 20_000
# Stored subtitles a directory-trained dictionary is measured on (against plain zstd or the
# current dictionary) before it may be adopted.
MEASURE_SAMPLES = 500
READ_CONCURRENCY = 16
TRAIN_JOB = "train_dictionary"
MIGRATE_JOB = "migrate_compression"
EnqueueMany = Callable[[list[JobRequest]], Awaitable[object]]


async def stored_samples(store: SubtitleStore, limit: int) -> list[bytes]:
    """Up to `limit` stored subtitles at random; unreadable objects are skipped, an outage raises."""
    paths = await sample_stored(store.pool, limit)
    gate = asyncio.Semaphore(READ_CONCURRENCY)

    async def read(path: str) -> bytes | None:
        async with gate:
            try:
                return await store.read(path)
            except CompressionError as exc:
                log.warning("stored object unreadable; not a sample", path=path, error=str(exc))
                return None

    return [data for data in await asyncio.gather(*map(read, paths)) if data]


async def gather_and_train(
    store: SubtitleStore,
    *,
    limit: int | None = None,
    from_dir: Path | None = None,
    requester: Requester | None = None,
    adopt: bool = True,
    options: TrainingOptions = DEFAULT_TRAINING,
) -> TrainingReport:
    """Train on up to `limit` stored subtitles (default) or files of a directory (those
    `requester` may read, when given), measure against the current dictionary on held-out
    samples, and adopt the new one when it is worth it. A dictionary trained on a directory is
    measured on stored subtitles only: files someone chose cannot vouch for themselves. Raises
    NotEnoughSamples, ValueError for an unreadable directory, StorageError on an outage."""
    async with store.training_lock:
        return await _train(store, limit, from_dir, requester, adopt, options)


async def _train(
    store: SubtitleStore,
    limit: int | None,
    from_dir: Path | None,
    requester: Requester | None,
    adopt: bool,
    options: TrainingOptions,
) -> TrainingReport:
    held: list[bytes] = []
    train: list[bytes] = []
    if from_dir is not None:
        samples = await asyncio.to_thread(
            directory_samples, from_dir, limit or MAX_SAMPLES, requester
        )
        train = samples
        held = await stored_samples(store, MEASURE_SAMPLES)
    else:
        samples = await stored_samples(store, limit or DEFAULT_SAMPLES)
        random.shuffle(samples)
        for index, sample in enumerate(samples):
            (held if index % options.held_out_every == 0 else train).append(sample)
    if len(samples) < options.min_samples:
        raise NotEnoughSamples(
            f"{len(samples)} samples found; training needs at least {options.min_samples}"
        )
    return await train_and_adopt(store, train, held, adopt=adopt, options=options)


async def queue_plain_migrations(store: SubtitleStore, enqueue_many: EnqueueMany) -> int:
    """After the first dictionary: every object stored before it is a plain frame, worth
    rewriting once (later dictionaries leave older objects alone, they stay readable)."""
    if store.newest is None:
        return 0
    paths = await stored_before(store.pool, store.newest.created_at)
    for start in range(0, len(paths), 500):
        await enqueue_many(
            [JobRequest(MIGRATE_JOB, {"path": p}) for p in paths[start : start + 500]]
        )
    log.info("objects stored before the first dictionary queued for migration", count=len(paths))
    return len(paths)


class AutoTrain:
    """Queues train_dictionary once `train_after` subtitles are stored, then again each time the
    stored population doubles (a new dictionary is adopted only when it beats the current one).

    The population is counted in the database once, then followed in memory: a count(*) per
    stored subtitle would scan the table. Stores finishing during that count wait for it and then
    add themselves: one that the count already saw is counted twice (at most a few early), but
    none is lost, which would leave the threshold unreached.
    """

    def __init__(self, store: SubtitleStore, train_after: int, growth: float = 2.0) -> None:
        self.store = store
        self.train_after = train_after
        self.growth = growth
        self._total: int | None = None
        self._next = train_after
        self._queued = False
        self._counting = asyncio.Lock()

    async def _count(self) -> None:
        newest = self.store.newest
        trained_at = newest.created_at if newest is not None else None
        total, before = await count_stored(self.store.pool, trained_at)
        if newest is not None:
            self._next = max(self.train_after, int(before * self.growth))
        self._total = total

    async def stored(self, enqueue: Callable[[str, dict[str, Any]], Awaitable[object]]) -> None:
        """Called after each stored subtitle (already recorded in the table)."""
        if self.train_after <= 0:
            return
        async with self._counting:
            if self._total is None:
                await self._count()
            else:
                self._total += 1
        assert self._total is not None
        if self._queued or self._total < self._next:
            return
        self._queued = True
        try:
            await enqueue(TRAIN_JOB, {})
        except Exception as exc:  # the store succeeded; the next one asks again
            self._queued = False
            log.warning("could not queue dictionary training", error=f"{type(exc).__name__}: {exc}")
            return
        log.info("dictionary training queued", stored=self._total)

    def trained(self) -> None:
        """A training ended (adopted or not): ask again once the population has grown."""
        self._queued = False
        if self._total is not None:
            self._next = max(self.train_after, int(self._total * self.growth))
