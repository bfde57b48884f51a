"""The subtitle store as the daemon opens it from [storage]: every backend is started the same way
(S3 included, no special case), writes compress, reads decompress, and migrate() rewrites a plain
object once a dictionary is adopted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from addicted_jobs.settings import Settings
from addicted_jobs.storage.compression import ZSTD_MAGIC, build_dictionary
from addicted_jobs.storage.s3 import S3Storage
from addicted_jobs.storage.setup import open_subtitle_store
from addicted_jobs.storage.store import SubtitleStore

TEXT = b"1\r\n00:00:01,000 --> 00:00:02,000\r\nHello there, stored subtitle.\r\n"


def _samples(count: int) -> list[bytes]:
    return [
        f"{i}\r\n00:00:{i % 60:02},000 --> 00:00:{i % 60:02},900\r\nLine {i} of a subtitle.\r\n".encode()
        * 20
        for i in range(count)
    ]


@pytest.fixture
def storage_settings(tmp_path: Path, s3_settings: dict[str, Any]) -> dict[str, Settings]:
    return {
        "local": Settings(state={"dir": tmp_path}),
        "s3": Settings(state={"dir": tmp_path}, storage={"backend": "s3", "s3": s3_settings}),
    }


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_an_opened_store_writes_compressed_and_reads_back(
    db_pool: asyncpg.Pool, storage_settings: dict[str, Settings], backend: str
) -> None:
    store = await open_subtitle_store(storage_settings[backend], db_pool)
    try:
        assert isinstance(store.storage, S3Storage) == (backend == "s3")
        size = await store.write("1/1/1/a.srt", TEXT)
        raw = await store.storage.get("1/1/1/a.srt")
        assert raw is not None and raw[:4] == ZSTD_MAGIC and len(raw) == size
        assert await store.read("1/1/1/a.srt") == TEXT
        assert await store.holds("1/1/1/a.srt") and not await store.holds("1/1/1/b.srt")
        await store.delete("1/1/1/a.srt")
        assert await store.read("1/1/1/a.srt") is None
    finally:
        await store.close()


async def test_migrate_rewrites_a_plain_object_with_the_new_dictionary(
    db_pool: asyncpg.Pool, storage_settings: dict[str, Settings]
) -> None:
    store: SubtitleStore = await open_subtitle_store(storage_settings["local"], db_pool)
    try:
        await store.write("2/1/1/a.srt", TEXT)
        assert (await store.migrate("2/1/1/a.srt")).outcome == "current"
        await store.adopt(build_dictionary(_samples(200), 4096), trained_on=200, sample_ratio=None)
        done = await store.migrate("2/1/1/a.srt")
        assert done.outcome == "migrated" and done.target == "2/1/1/a.srt"
        blob = await store.storage.get("2/1/1/a.srt")
        assert blob is not None and store.is_current(blob)
        assert await store.read("2/1/1/a.srt") == TEXT
        assert (await store.migrate("2/1/1/missing.srt")).outcome == "missing"
    finally:
        await store.close()
