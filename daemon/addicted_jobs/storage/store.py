"""Subtitle files in object storage: `write` compresses and puts, `read` gets and decompresses, and
the codec's dictionaries are kept in step with `storage_dictionaries`. The backend's own
`put`/`get` move opaque bytes; only this class knows they are compressed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import asyncpg
import structlog
import zstandard

from addicted_jobs.storage.base import Storage
from addicted_jobs.storage.compression import (
    ZSTD_MAGIC,
    Codec,
    CompressionError,
    CorruptObject,
    Dictionary,
    UnknownDictionary,
)
from addicted_jobs.storage.dictionaries import StoredDictionary, load_dictionaries, save_dictionary
from addicted_jobs.storage.legacy_formats import LEGACY_SUFFIX, current_key, legacy_key

log = structlog.get_logger(__name__)

# Called with a legacy `….brotli` key a read fell back to: queues its migrate_compression.
OnLegacy = Callable[[str], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Migration:
    """What `SubtitleStore.migrate` did with one object. `target` is the key it lives under now
    (or would); the sizes are in bytes, set when `outcome` is "migrated"; `error` says why an
    "unreadable" object was left as it is."""

    outcome: Literal["missing", "superseded", "current", "unreadable", "migrated"]
    target: str
    old_size: int = 0
    new_size: int = 0
    error: str = ""


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
        """The dictionary new objects are written with; None writes plain zstd frames."""
        return self.newest.dictionary if self.newest is not None else None

    async def write(self, key: str, data: bytes) -> int:
        """Compress and upload; returns once the object is durably stored (its size in bytes).
        Raises ObjectTooLarge, or StorageError when the backend refuses."""
        blob = await self.compress(data)
        await self.storage.put(key, blob)
        return len(blob)

    async def compress(self, data: bytes) -> bytes:
        """`data` as write() stores it, compressed off the event loop. Raises ObjectTooLarge."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._compressing, self.codec.compress, data)

    async def read(self, key: str) -> bytes | None:
        """The decompressed object, or None when there is none under `key` nor under the
        original's legacy `key + ".brotli"`; reading a legacy one queues its migration (spec 7.2).
        Raises CompressionError for an object that does not decode."""
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
        """An object's bytes as stored, decoded; reloads the dictionaries once for an unknown id."""
        try:
            return self.codec.decompress(blob)
        except UnknownDictionary:
            await self.load_dictionaries()
            return self.codec.decompress(blob)

    async def holds(self, key: str) -> bool:
        """Whether an object is stored under `key`, or as the original's legacy object (an
        imported subtitle may exist only as that, spec 7.2)."""
        return await self.storage.exists(key) or await self.storage.exists(legacy_key(key))

    async def delete(self, key: str) -> None:
        """Remove the object under `key` (nothing happens when there is none)."""
        await self.storage.delete(key)

    async def readable(self, key: str) -> bool:
        """Whether an object is stored under `key` and decodes."""
        blob = await self.storage.get(key)
        if blob is None:
            return False
        try:
            await self.decompress(blob)
        except CompressionError:
            return False
        return True

    def is_current(self, blob: bytes) -> bool:
        """Whether `blob` is already what write() would store now (a bare frame, writer's dict)."""
        # The original's signed frames start with their signature, so they are never current.
        if blob[:4] != ZSTD_MAGIC:
            return False
        try:
            params = zstandard.get_frame_parameters(blob)
        except zstandard.ZstdError:
            return False
        return bool(params.dict_id == (self.codec.dictionaries.writer_id or 0))

    async def migrate(self, path: str) -> Migration:
        """Rewrite one object in the current format (spec 1.13): a legacy `….brotli` object moves
        to its key without the suffix; any other non-current format is rewritten in place. The
        old object goes only once the new one has read back byte for byte. Raises CorruptObject
        when the new object does not decode or read back (the old one is kept), StorageError on
        a backend failure."""
        target = current_key(path) if path.endswith(LEGACY_SUFFIX) else path
        old = await self.storage.get(path)
        if old is None:
            return Migration("missing", target)
        if target != path and await self.readable(target):
            # Stored again since (reads already serve it): the legacy copy is only stale.
            await self.storage.delete(path)
            return Migration("superseded", target)
        if target == path and self.is_current(old):
            return Migration("current", target)
        try:
            if target != path:
                data = self.codec.decompress_raw_brotli(old)
            else:
                data = await self.decompress(old)
        except CompressionError as exc:
            return Migration("unreadable", target, error=str(exc))
        new = await self.compress(data)
        if self.codec.decompress(new) != data:
            raise CorruptObject(f"re-compressed {path} does not decode to the original")
        # A put replaces the object atomically: the old one stays until the new one is whole.
        await self.storage.put(target, new)
        if await self.storage.get(target) != new:
            if target == path:
                await self.storage.put(path, old)
            raise CorruptObject(f"{target} did not read back as written; the old object is kept")
        if target != path:
            await self.storage.delete(path)
        return Migration("migrated", target, old_size=len(old), new_size=len(new))

    async def close(self) -> None:
        """Close the backend and the compressing thread."""
        await self.storage.close()
        self._compressing.shutdown(wait=False)
