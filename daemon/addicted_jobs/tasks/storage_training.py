"""Dictionary training: samples (stored subtitles or a directory), a held-out measure against the
current dictionary, adoption when worth it, and the trigger that queues train_dictionary by itself.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import random
import stat
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog

from addicted_jobs.jobs import JobRequest
from addicted_jobs.storage import compression
from addicted_jobs.storage.compression import CompressionError, Dictionary
from addicted_jobs.tasks.subtitle_store import (
    SubtitleStore,
    count_stored,
    sample_stored,
    stored_before,
)

log = structlog.get_logger(__name__)

DEFAULT_SAMPLES = 2000
MAX_SAMPLES = 20_000
MAX_SAMPLE_BYTES = 8 * 1024 * 1024
# Stored subtitles a directory-trained dictionary is measured on (against plain zstd or the
# current dictionary) before it may be adopted.
MEASURE_SAMPLES = 500
READ_CONCURRENCY = 16
TRAIN_JOB = "train_dictionary"
MIGRATE_JOB = "migrate_compression"
EnqueueMany = Callable[[list[JobRequest]], Awaitable[object]]


class NotEnoughSamples(ValueError):
    pass


@dataclass(frozen=True)
class TrainingOptions:
    dict_size: int = compression.DEFAULT_DICTIONARY_SIZE
    min_samples: int = 20
    held_out_every: int = 10  # every 10th sample measures, the rest train
    min_gain: float = 1.02  # a first dictionary must beat plain zstd by 2% on held-out files
    min_improvement: float = 1.03  # a newer one must beat the current one by 3%


DEFAULT_TRAINING = TrainingOptions()


@dataclass(frozen=True)
class TrainingReport:
    dictionary_id: int
    dictionary_bytes: int
    trained_on: int
    held_out: int
    gain_vs_plain: float  # plain zstd size / new dictionary size, held-out files
    previous_id: int | None
    gain_vs_previous: float | None  # current dictionary size / new dictionary size
    adopted: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def stored_samples(store: SubtitleStore, limit: int) -> list[bytes]:
    """Up to `limit` stored subtitles at random; unreadable objects are skipped, an outage raises."""
    paths = await sample_stored(store.pool, limit)
    gate = asyncio.Semaphore(READ_CONCURRENCY)

    async def read(path: str) -> bytes | None:
        async with gate:
            try:
                return await store.get(path)
            except CompressionError as exc:
                log.warning("stored object unreadable; not a sample", path=path, error=str(exc))
                return None

    return [data for data in await asyncio.gather(*map(read, paths)) if data]


@dataclass(frozen=True)
class Requester:
    """Who asked for a training from a directory (SO_PEERCRED): the daemon reads only what this
    user could read itself, so the socket never lends the daemon's rights to a local user."""

    uid: int
    gids: frozenset[int]

    @classmethod
    def of_uid(cls, uid: int) -> Requester:
        try:
            entry = pwd.getpwuid(uid)
            gids = frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
        except KeyError:  # a uid without a passwd entry: its own files and world-readable ones
            gids = frozenset()
        return cls(uid, gids)

    def may(self, st: os.stat_result, bits: int) -> bool:
        """True when the permission `bits` (4 read, 1 search) of `st` are granted to us."""
        if self.uid == 0:
            return True
        if st.st_uid == self.uid:
            granted = st.st_mode >> 6
        elif st.st_gid in self.gids:
            granted = st.st_mode >> 3
        else:
            granted = st.st_mode
        return granted & bits == bits


def _reachable(directory: Path, requester: Requester) -> None:
    for ancestor in reversed(directory.parents):
        if not requester.may(ancestor.stat(), 1):
            raise PermissionError(f"{ancestor}: not searchable by uid {requester.uid}")
    if not requester.may(directory.stat(), 4 | 1):
        raise PermissionError(f"{directory}: not readable by uid {requester.uid}")


def _candidates(directory: Path, requester: Requester | None) -> list[tuple[Path, int, int]]:
    """(path, device, inode) of the regular files under `directory` (symlinks not followed) that
    `requester` may read, seen through directory descriptors."""
    found: list[tuple[Path, int, int]] = []
    for dirpath, dirnames, filenames, dirfd in os.fwalk(directory, follow_symlinks=False):
        if requester is not None and not requester.may(os.fstat(dirfd), 4 | 1):
            dirnames[:] = []  # nor anything below it
            continue
        for name in filenames:
            try:
                st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or not 0 < st.st_size <= MAX_SAMPLE_BYTES:
                continue
            if requester is None or requester.may(st, 4):
                found.append((Path(dirpath) / name, st.st_dev, st.st_ino))
    return found


def _read_same(path: Path, dev: int, ino: int) -> bytes | None:
    # O_NOFOLLOW and the inode seen by the walk: a file or directory swapped for a symlink since
    # (to somewhere the requester cannot read) is not read.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        st = os.fstat(file.fileno())
        if (st.st_dev, st.st_ino) != (dev, ino):
            return None
        return file.read(MAX_SAMPLE_BYTES + 1)[:MAX_SAMPLE_BYTES]


def directory_samples(
    directory: Path, limit: int, requester: Requester | None = None
) -> list[bytes]:
    """Up to `limit` files under `directory` (recursively), at random. With a `requester`, only
    files that user can read, through directories it can search. Blocking: use a thread."""
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a directory the daemon can read")
    try:
        if requester is not None:
            _reachable(directory, requester)
        files = _candidates(directory, requester)
        picked = random.sample(files, min(limit, len(files)))
        samples = [data for entry in picked if (data := _read_same(*entry))]
    except PermissionError as exc:
        raise ValueError(f"cannot train on {directory}: {exc}") from None
    except OSError as exc:
        raise ValueError(f"cannot read samples under {directory}: {exc}") from exc
    return samples


def _train_and_measure(
    train: list[bytes],
    held: list[bytes],
    current: Dictionary | None,
    taken: frozenset[int],
    options: TrainingOptions,
    level: int,
) -> tuple[Dictionary, float, float | None]:
    # Trained at TRAINING_LEVEL (scoring candidates at the writing level is ~25x slower for ~1%),
    # measured at the level objects are written at.
    new = compression.train_dictionary(train, options.dict_size, taken_ids=taken)
    gain = compression.evaluate_gain(new, held, level=level)
    previous = compression.evaluate_gain(current, held, level=level) if current else None
    return new, gain, previous


async def train_dictionary(
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
    measured on stored subtitles only: files someone chose cannot vouch for themselves."""
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
    current = store.writer
    new, gain, previous = await asyncio.to_thread(
        _train_and_measure,
        train,
        held or train,
        current,
        store.codec.dictionaries.ids(),
        options,
        store.codec.dictionaries.level,
    )
    versus = gain / previous if previous else None
    if versus is None:
        worth, reason = (
            gain >= options.min_gain,
            f"{gain:.3f}x plain zstd (needs {options.min_gain})",
        )
    else:
        worth = versus >= options.min_improvement
        reason = f"{versus:.3f}x the current dictionary (needs {options.min_improvement})"
    if not held:
        # Nothing stored to measure on (its own files would vouch for it): reported, not adopted.
        worth, reason = False, "no stored subtitles to measure it on; store some first"
    adopted = adopt and worth
    if adopted:
        await store.adopt(new, trained_on=len(train), sample_ratio=gain)
    reason = ("adopted" if adopted else "not adopted" if adopt else "dry run") + ": " + reason
    return TrainingReport(
        new.id,
        len(new.data),
        len(train),
        len(held),
        gain,
        current.id if current else None,
        versus,
        adopted,
        reason,
    )


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
