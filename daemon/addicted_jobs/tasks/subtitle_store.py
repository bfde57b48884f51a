"""Subtitle files in object storage: compress + put, get + decompress, the codec's dictionaries kept
in step with `storage_dictionaries`, and the few subtitle-row statements the storage jobs need.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog
import zstandard

from addicted_jobs.storage.base import Storage, object_key
from addicted_jobs.storage.compression import (
    ZSTD_MAGIC,
    Codec,
    Dictionary,
    UnknownDictionary,
)
from addicted_jobs.storage.dictionaries import StoredDictionary, load_dictionaries, save_dictionary
from addicted_jobs.storage.legacy_formats import legacy_key

log = structlog.get_logger(__name__)

# Called with a legacy `….brotli` key a read fell back to: queues its migrate_compression.
OnLegacy = Callable[[str], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class SubtitleRow:
    """A subtitle with what its object key and its download need."""

    id: int
    unique_id: uuid.UUID
    show_id: int
    season: int
    episode: int
    download_uri: str
    completed: bool
    storage_path: str | None
    stored_at: datetime | None

    @property
    def key(self) -> str:
        return object_key(self.show_id, self.season, self.episode, self.unique_id)


async def get_subtitle(pool: asyncpg.Pool, subtitle_id: int) -> SubtitleRow | None:
    row = await pool.fetchrow(
        """SELECT s.id, s.unique_id, e.tv_show_id AS show_id, e.season, e.number AS episode,
                  s.download_uri, s.completed, s.storage_path, s.stored_at
           FROM subtitles s JOIN episodes e ON e.id = s.episode_id WHERE s.id = $1""",
        subtitle_id,
    )
    return SubtitleRow(**dict(row)) if row is not None else None


async def mark_stored(pool: asyncpg.Pool, subtitle_id: int, key: str) -> bool:
    """Record where the object is; False when the row is gone."""
    status = await pool.execute(
        "UPDATE subtitles SET storage_path = $2, stored_at = now() WHERE id = $1", subtitle_id, key
    )
    return bool(status.endswith(" 1"))


async def delete_subtitle(pool: asyncpg.Pool, subtitle_id: int) -> bool:
    status = await pool.execute("DELETE FROM subtitles WHERE id = $1", subtitle_id)
    return bool(status.endswith(" 1"))


async def count_download(pool: asyncpg.Pool, subtitle_id: int) -> None:
    # One atomic statement: concurrent downloads of one subtitle never lose a count.
    await pool.execute(
        "UPDATE subtitles SET download_count = download_count + 1 WHERE id = $1", subtitle_id
    )


async def count_stored(pool: asyncpg.Pool, before: datetime | None) -> tuple[int, int]:
    """Subtitles stored in all, and those stored at or before `before` (rows without a stored_at,
    from before it was recorded, count as before)."""
    row = await pool.fetchrow(
        """SELECT count(*) AS total, count(*) FILTER (WHERE stored_at IS NULL OR stored_at <= $1) AS before
           FROM subtitles WHERE storage_path IS NOT NULL""",
        before,
    )
    assert row is not None  # an aggregate always returns its one row
    return int(row["total"]), int(row["before"])


async def sample_stored(pool: asyncpg.Pool, limit: int) -> list[str]:
    """Storage paths of up to `limit` stored subtitles, picked at random."""
    rows = await pool.fetch(
        "SELECT storage_path FROM subtitles WHERE storage_path IS NOT NULL"
        " ORDER BY random() LIMIT $1",
        limit,
    )
    return [r["storage_path"] for r in rows]


async def stored_before(pool: asyncpg.Pool, moment: datetime) -> list[str]:
    rows = await pool.fetch(
        "SELECT storage_path FROM subtitles WHERE storage_path IS NOT NULL AND stored_at <= $1"
        " ORDER BY id",
        moment,
    )
    return [r["storage_path"] for r in rows]


class SubtitleStore:
    """Objects are written with the newest dictionary and read with whichever one their frame
    names. Only this process writes dictionaries (the daemon holds an instance lock), so the
    in-memory set is the table's; a frame naming an unknown id still triggers one reload."""

    def __init__(self, storage: Storage, codec: Codec, pool: asyncpg.Pool) -> None:
        self.storage = storage
        self.codec = codec
        self.pool = pool
        self.on_legacy: OnLegacy | None = None
        self.newest: StoredDictionary | None = None
        self._reload = asyncio.Lock()
        # One training at a time (the job and the command): each one measures the current writer.
        self.training_lock = asyncio.Lock()
        # Compressing at a high level takes tens of milliseconds per file: off the event loop, on
        # one thread, because a zstd compressor must not be used by two threads at once.
        self._compressing = ThreadPoolExecutor(1, thread_name_prefix="zstd-compress")

    async def load_dictionaries(self) -> list[StoredDictionary]:
        """Load every dictionary of the table not loaded yet; the newest becomes the writer."""
        async with self._reload:
            stored = await load_dictionaries(self.pool)
            loaded = self.codec.dictionaries.ids()
            for entry in stored:
                if entry.dictionary.id not in loaded:
                    self.codec.add_dictionary(entry.dictionary)
            if stored:
                self.newest = stored[-1]
                if self.codec.dictionaries.writer_id != self.newest.dictionary.id:
                    self.codec.add_dictionary(self.newest.dictionary)
            return stored

    async def adopt(
        self, dictionary: Dictionary, *, trained_on: int, sample_ratio: float | None
    ) -> StoredDictionary:
        """Record a dictionary, then write with it. Saved first: an object must never name a
        dictionary the table does not hold."""
        saved = await save_dictionary(
            self.pool, dictionary, trained_on=trained_on, sample_ratio=sample_ratio
        )
        self.codec.add_dictionary(dictionary)
        self.newest = saved
        log.info("writing with a new dictionary", dictionary_id=dictionary.id)
        return saved

    @property
    def writer(self) -> Dictionary | None:
        return self.newest.dictionary if self.newest is not None else None

    async def put(self, key: str, data: bytes) -> int:
        """Compress and upload; returns once the object is durably stored (its size)."""
        blob = await self.compress(data)
        await self.storage.put(key, blob)
        return len(blob)

    async def compress(self, data: bytes) -> bytes:
        """`data` as put() writes it, compressed off the event loop. Raises ObjectTooLarge."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._compressing, self.codec.compress, data)

    async def get(self, key: str) -> bytes | None:
        """The decompressed object, or None when there is none under `key` nor under the
        original's legacy `key + ".brotli"`; reading a legacy one queues its migration (spec 7.2)."""
        blob = await self.storage.get(key)
        if blob is not None:
            return await self.decompress(blob)
        legacy = legacy_key(key)
        blob = await self.storage.get(legacy)
        if blob is None:
            return None
        data = self.codec.decompress_raw_brotli(blob)
        if self.on_legacy is not None:
            try:
                await self.on_legacy(legacy)
            except Exception as exc:  # the read itself succeeded; the next one queues it again
                log.warning("legacy object not queued for migration", path=legacy, error=str(exc))
        return data

    async def decompress(self, blob: bytes) -> bytes:
        try:
            return self.codec.decompress(blob)
        except UnknownDictionary:
            await self.load_dictionaries()
            return self.codec.decompress(blob)

    def is_current(self, blob: bytes) -> bool:
        """Whether `blob` is already what put() would write now (a bare frame, writer's dict)."""
        # The original's signed frames start with their signature, so they are never current.
        if blob[:4] != ZSTD_MAGIC:
            return False
        try:
            params = zstandard.get_frame_parameters(blob)
        except zstandard.ZstdError:
            return False
        return bool(params.dict_id == (self.codec.dictionaries.writer_id or 0))

    async def close(self) -> None:
        await self.storage.close()
        self._compressing.shutdown(wait=False)
