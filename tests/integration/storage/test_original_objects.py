"""The original system's stored objects, on local files and on moto's S3 server: signed Brotli,
unsigned Brotli, a legacy `….brotli` object and a srt-dict frame all read back; the legacy one is
migrated by the job its read queued and then deleted; a Brotli bomb is refused. And after an
import, `storage get` serves imported subtitles from those objects as they lie in the bucket.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import brotli
import pytest

from addicted_jobs.jobs import Registry
from addicted_jobs.jobs.engine import Engine
from addicted_jobs.storage.base import Storage
from addicted_jobs.storage.compression import BROTLI_SIGNATURE, ZSTD_MAGIC, Codec, ObjectTooLarge
from addicted_jobs.storage.local import LocalStorage
from addicted_jobs.storage.store import SubtitleStore
from addicted_jobs.tasks.ops.storage import storage_get
from addicted_jobs.tasks.storage import register_storage_jobs
from tests.support import wait_until
from tests.support.addictedproxy import original_database
from tests.support.catalogue import CatalogueEnv, catalogue_env
from tests.support.download import download_rig
from tests.support.engine import EngineFactory
from tests.support.importer import run_import
from tests.support.paths import shared_path
from tests.support.storage import FAST_RETRY, QUEUES, s3, until_done


def fixture(name: str) -> bytes:
    return shared_path("fixtures", "compression", name).read_bytes()


@pytest.fixture
async def env(db_pool: asyncpg.Pool) -> AsyncIterator[CatalogueEnv]:
    async with catalogue_env(db_pool, shows=1, with_tmdb=False) as env:
        yield env


@pytest.fixture(params=["local", "s3"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, s3_server: str, s3_bucket: str
) -> AsyncIterator[Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "objects", fsync=False)
        return
    async with s3(s3_server, s3_bucket) as storage:
        yield storage


async def rig(
    env: CatalogueEnv, make_engine: EngineFactory, backend: Storage, **codec: int
) -> tuple[SubtitleStore, Engine]:
    """The daemon's store with the original's dictionary, its storage jobs on a real engine, and
    the legacy-read hook wired as Domain.bind wires it."""
    store = SubtitleStore(
        backend, Codec(original_dictionary=fixture("srt-dict"), **codec), env.pool
    )
    registry = Registry()
    register_storage_jobs(registry, env.resources, store, retry=FAST_RETRY)
    engine = await make_engine(registry, concurrency=QUEUES)
    store.on_legacy = lambda path: engine.enqueue("migrate_compression", {"path": path})
    return store, engine


async def test_every_original_format_reads_back_and_legacy_objects_migrate(
    env: CatalogueEnv, make_engine: EngineFactory, backend: Storage
) -> None:
    text = fixture("sample.srt")
    store, engine = await rig(env, make_engine, backend)
    objects = {
        "1/1/1/signed.srt": BROTLI_SIGNATURE + brotli.compress(text),
        "1/1/2/unsigned.srt": brotli.compress(text),
        "1/1/3/legacy.srt.brotli": brotli.compress(text),
        "1/1/4/srtdict.srt": fixture("sample.srt.zstd-srtdict"),
        "1/1/5/plain.srt": fixture("sample.srt.zstd-plain"),
    }
    for key, blob in objects.items():
        await backend.put(key, blob)
    for key in ("1/1/1/signed.srt", "1/1/2/unsigned.srt", "1/1/4/srtdict.srt", "1/1/5/plain.srt"):
        assert await store.read(key) == text, key
    # Only the legacy object exists: the read falls back to it and queues its migration.
    assert await store.read("1/1/3/legacy.srt") == text

    async def migrated() -> bool:
        return await backend.get("1/1/3/legacy.srt.brotli") is None

    await wait_until(migrated, timeout=20, message="the legacy object migrated and deleted")
    new = await backend.get("1/1/3/legacy.srt")
    assert new is not None and new.startswith(ZSTD_MAGIC)
    assert await store.read("1/1/3/legacy.srt") == text
    jobs = await env.pool.fetch("SELECT id, args FROM jobs.jobs WHERE name = 'migrate_compression'")
    assert [j["args"] for j in jobs] == [{"path": "1/1/3/legacy.srt.brotli"}]
    assert (await until_done(env.pool, jobs[0]["id"]))["state"] == "succeeded"
    # A legacy object whose key was stored again since is only stale: deleted, the new one kept.
    await backend.put("1/1/3/legacy.srt.brotli", brotli.compress(b"stale"))
    done = await until_done(
        env.pool,
        (await engine.enqueue("migrate_compression", {"path": "1/1/3/legacy.srt.brotli"})).id,
    )
    assert done["state"] == "succeeded"
    assert await backend.get("1/1/3/legacy.srt.brotli") is None
    assert await backend.get("1/1/3/legacy.srt") == new
    # Every other non-current format is rewritten in place on request, then reads the same.
    for key in ("1/1/1/signed.srt", "1/1/2/unsigned.srt", "1/1/4/srtdict.srt"):
        done = await until_done(
            env.pool, (await engine.enqueue("migrate_compression", {"path": key})).id
        )
        assert done["state"] == "succeeded"
        raw = await backend.get(key)
        assert raw is not None and raw.startswith(ZSTD_MAGIC), key
        assert await store.read(key) == text


async def test_a_brotli_bomb_is_refused(
    env: CatalogueEnv, make_engine: EngineFactory, backend: Storage
) -> None:
    store, engine = await rig(env, make_engine, backend, max_output_size=1 << 20)
    bomb = brotli.compress(b"\0" * (32 << 20), quality=11)
    await backend.put("2/1/1/bomb.srt", BROTLI_SIGNATURE + bomb)
    await backend.put("2/1/2/bomb.srt.brotli", bomb)
    with pytest.raises(ObjectTooLarge):
        await store.read("2/1/1/bomb.srt")
    with pytest.raises(ObjectTooLarge):
        await store.read("2/1/2/bomb.srt")
    done = await until_done(
        env.pool, (await engine.enqueue("migrate_compression", {"path": "2/1/1/bomb.srt"})).id
    )
    assert done["state"] == "succeeded"  # logged and left as it is
    assert await backend.get("2/1/1/bomb.srt") == BROTLI_SIGNATURE + bomb


async def test_storage_get_serves_imported_subtitles_from_the_original_objects(
    pg_admin_dsn: str, db_dsn: str, db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    text = fixture("sample.srt")
    async with original_database(pg_admin_dsn) as source:
        await run_import(source, db_dsn)
    rows = await db_pool.fetch(
        "SELECT id, storage_path FROM subtitles WHERE storage_path IS NOT NULL ORDER BY id LIMIT 4"
    )
    backend = LocalStorage(tmp_path / "bucket", fsync=False)
    formats = [
        BROTLI_SIGNATURE + brotli.compress(text),
        brotli.compress(text),
        fixture("sample.srt.zstd-srtdict"),
        None,  # only the legacy object
    ]
    for row, blob in zip(rows, formats, strict=True):
        if blob is None:
            await backend.put(row["storage_path"] + ".brotli", brotli.compress(text))
        else:
            await backend.put(row["storage_path"], blob)
    store = SubtitleStore(backend, Codec(original_dictionary=fixture("srt-dict")), db_pool)
    queued: list[str] = []

    async def on_legacy(path: str) -> None:
        queued.append(path)

    store.on_legacy = on_legacy
    for row in rows:
        got = await storage_get(db_pool, store, row["id"])
        assert base64.b64decode(got["content"]) == text
        assert got["path"] == row["storage_path"]
    assert queued == [rows[3]["storage_path"] + ".brotli"]

    async def engine_down(path: str) -> None:
        raise ConnectionError("database restarting")

    # Queuing the migration is not the read's business: the file is served all the same.
    store.on_legacy = engine_down
    got = await storage_get(db_pool, store, rows[3]["id"])
    assert base64.b64decode(got["content"]) == text


async def test_a_subtitle_stored_only_as_a_legacy_object_is_not_downloaded_again(
    db_pool: asyncpg.Pool, make_engine: EngineFactory, tmp_path: Path
) -> None:
    async with download_rig(db_pool, make_engine, tmp_path, credential=True) as bench:
        subtitle_id = await bench.add(bench.pick())
        key = "7/1/1/imported.srt"
        await db_pool.execute(
            "UPDATE subtitles SET storage_path = $2, stored_at = now() WHERE id = $1",
            subtitle_id,
            key,
        )
        await bench.store.storage.put(key + ".brotli", brotli.compress(b"1\r\nold\r\n"))
        assert (await bench.download(subtitle_id))["state"] == "succeeded"
        assert bench.cookies_downloading() == []  # no quota spent on Addic7ed
        assert await bench.count(subtitle_id) == 0
