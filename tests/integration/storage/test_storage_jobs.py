"""store_subtitle, migrate_compression and train_dictionary on the real engine against moto's S3
server over HTTP: store and read back, the first dictionary trained by itself, migrations, the
original system's format, and an S3 outage in the middle of a store.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import zstandard
from pydantic import ValidationError

from addicted_jobs.jobs import DEFAULT_RETRY, Registry
from addicted_jobs.jobs.engine import Engine
from addicted_jobs.storage.compression import ZSTD_MAGIC, Codec, build_dictionary
from addicted_jobs.storage.dictionaries import save_dictionary
from addicted_jobs.storage.s3 import S3Storage
from addicted_jobs.storage.store import SubtitleStore
from addicted_jobs.storage.training import TrainingOptions
from addicted_jobs.tasks.ops.storage import storage_get
from addicted_jobs.tasks.storage import MAX_BLOB_BYTES, register_storage_jobs
from addicted_jobs.tasks.storage_training import TRAIN_JOB, AutoTrain
from tests.plugins.s3 import MotoServer
from tests.support import wait_until
from tests.support.catalogue import CatalogueEnv, catalogue_env
from tests.support.engine import EngineFactory
from tests.support.paths import shared_path
from tests.support.storage import (
    FAST_RETRY,
    QUEUES,
    add_subtitle,
    job,
    s3,
    sample_files,
    until_done,
)

SMALL_TRAINING = TrainingOptions(dict_size=4096, min_samples=20)


async def subtitle(pool: asyncpg.Pool, subtitle_id: int) -> dict[str, Any]:
    row = await pool.fetchrow(
        "SELECT unique_id, storage_path, stored_at FROM subtitles WHERE id = $1", subtitle_id
    )
    assert row is not None
    return dict(row)


class Rig:
    def __init__(self, env: CatalogueEnv, store: SubtitleStore, engine: Engine) -> None:
        self.env, self.store, self.engine, self.pool = env, store, engine, env.pool

    async def store_job(self, subtitle_id: int, data: bytes) -> int:
        blob = base64.b64encode(data).decode()
        result = await self.engine.enqueue(
            "store_subtitle", {"subtitle_id": subtitle_id, "blob": blob}
        )
        return result.id


async def make_rig(
    env: CatalogueEnv,
    make_engine: EngineFactory,
    storage: S3Storage,
    *,
    train_after: int = 0,
    codec: Codec | None = None,
) -> Rig:
    store = SubtitleStore(storage, codec or Codec(), env.pool)
    await store.load_dictionaries()
    registry = Registry()
    register_storage_jobs(
        registry,
        env.resources,
        store,
        train_after=train_after,
        training=SMALL_TRAINING,
        retry=FAST_RETRY,
    )
    return Rig(env, store, await make_engine(registry, concurrency=QUEUES))


@pytest.fixture
async def env(db_pool: asyncpg.Pool) -> AsyncIterator[CatalogueEnv]:
    async with catalogue_env(db_pool, shows=4, with_tmdb=False) as env:
        yield env


@pytest.fixture
async def bucket(s3_server: str, s3_bucket: str) -> AsyncIterator[S3Storage]:
    async with s3(s3_server, s3_bucket) as storage:
        yield storage


async def test_store_then_read_back_byte_for_byte(
    env: CatalogueEnv, make_engine: EngineFactory, bucket: S3Storage
) -> None:
    rig = await make_rig(env, make_engine, bucket)
    show = await env.add_show(1)
    sub_id = await add_subtitle(env.pool, 7, show_id=show, season=2)
    data = sample_files(1)[0] + b"\xff\xfe not UTF-8 \r\n"
    done = await until_done(env.pool, await rig.store_job(sub_id, data))
    assert done["state"] == "succeeded"
    row = await subtitle(env.pool, sub_id)
    assert row["storage_path"] == f"{show}/2/7/{row['unique_id']}.srt"
    assert row["stored_at"] is not None
    raw = await bucket.get(row["storage_path"])
    assert raw is not None and raw.startswith(ZSTD_MAGIC) and len(raw) < len(data)
    got = await storage_get(env.pool, rig.store, sub_id)
    assert base64.b64decode(got["content"]) == data and got["size"] == len(data)
    # Storing the same subtitle again is harmless: same key, same content.
    again = await until_done(env.pool, await rig.store_job(sub_id, data))
    assert again["state"] == "succeeded"
    assert (await subtitle(env.pool, sub_id))["storage_path"] == row["storage_path"]
    assert await rig.store.read(row["storage_path"]) == data


async def test_store_arguments_are_checked_and_a_missing_row_is_no_error(
    env: CatalogueEnv, make_engine: EngineFactory, bucket: S3Storage
) -> None:
    rig = await make_rig(env, make_engine, bucket)
    bad = [
        {"subtitle_id": 1, "blob": "not base64!"},
        {"subtitle_id": 1, "blob": ""},
        {"subtitle_id": 1, "blob": base64.b64encode(bytes(MAX_BLOB_BYTES + 1)).decode()},
        {"subtitle_id": 0, "blob": "AAAA"},
        {"subtitle_id": 1, "blob": "AAAA", "extra": 1},
    ]
    for args in bad:
        with pytest.raises(ValidationError):
            await rig.engine.enqueue("store_subtitle", args)
    spec = rig.engine.registry.get("store_subtitle")
    assert spec.parse({"subtitle_id": 3, "blob": "AAEC"}).model_dump(mode="json") == {
        "subtitle_id": 3,
        "blob": "AAEC",
    }
    done = await until_done(env.pool, await rig.store_job(424242, b"orphan"))
    assert done["state"] == "succeeded"
    assert await env.count("subtitles") == 0


async def test_s3_outage_during_store_retries_and_records_nothing_half_written(
    env: CatalogueEnv, make_engine: EngineFactory, restartable_s3_server: MotoServer
) -> None:
    server = restartable_s3_server
    name = server.create_bucket()
    storage = s3(server.endpoint_url, name, max_attempts=2, connect_timeout=1.0, read_timeout=2.0)
    async with storage:
        rig = await make_rig(env, make_engine, storage)
        sub_id = await add_subtitle(env.pool, 1, show_id=await env.add_show(3))
        data = sample_files(1)[0]
        server.stop()
        job_id = await rig.store_job(sub_id, data)

        async def failed_twice() -> bool:
            row = await job(env.pool, job_id)
            return row["attempt"] >= 2 and row["state"] in ("scheduled", "ready")

        await wait_until(failed_twice, timeout=20, message="two failed store attempts")
        assert "StorageError" in (await job(env.pool, job_id))["last_error"]
        row = await subtitle(env.pool, sub_id)
        assert row["storage_path"] is None and row["stored_at"] is None
        server.start()
        done = await until_done(env.pool, job_id, timeout=20)
        assert done["state"] == "succeeded"
        path = (await subtitle(env.pool, sub_id))["storage_path"]
        assert await rig.store.read(path) == data


async def test_first_dictionary_is_trained_by_itself_and_plain_objects_migrate(
    env: CatalogueEnv, make_engine: EngineFactory, bucket: S3Storage
) -> None:
    rig = await make_rig(env, make_engine, bucket, train_after=40)
    show = await env.add_show(5)
    files = sample_files(40)
    ids = [await add_subtitle(env.pool, n, show_id=show) for n in range(len(files))]
    jobs = [await rig.store_job(i, f) for i, f in zip(ids, files, strict=True)]
    for job_id in jobs:
        assert (await until_done(env.pool, job_id))["state"] == "succeeded"

    async def trained() -> asyncpg.Record | None:
        return await env.pool.fetchrow(
            "SELECT * FROM jobs.jobs WHERE name = 'train_dictionary' AND state = 'succeeded'"
        )

    await wait_until(trained, timeout=30, message="the automatic training")
    assert rig.store.newest is not None
    dict_id = rig.store.newest.dictionary.id
    assert await env.count("storage_dictionaries") == 1

    async def migrated() -> bool:
        states = await env.pool.fetch(
            "SELECT state FROM jobs.jobs WHERE name = 'migrate_compression'"
        )
        return len(states) == len(files) and all(s["state"] == "succeeded" for s in states)

    await wait_until(migrated, timeout=30, message="every plain object migrated")
    for sub_id, data in zip(ids, files, strict=True):
        path = (await subtitle(env.pool, sub_id))["storage_path"]
        raw = await bucket.get(path)
        assert raw is not None and zstandard.get_frame_parameters(raw).dict_id == dict_id
        assert await rig.store.read(path) == data


async def test_migrate_rewrites_the_original_format_and_leaves_what_it_cannot_read(
    env: CatalogueEnv, make_engine: EngineFactory, bucket: S3Storage
) -> None:
    original = shared_path("fixtures", "compression", "srt-dict").read_bytes()
    signed = shared_path("fixtures", "compression", "sample.srt.zstd-srtdict").read_bytes()
    text = shared_path("fixtures", "compression", "sample.srt").read_bytes()
    rig = await make_rig(env, make_engine, bucket, codec=Codec(original_dictionary=original))
    key = f"9/1/2/{uuid.uuid4()}.srt"
    await bucket.put(key, signed)
    await bucket.put("9/1/3/legacy.srt.brotli", b"\x1b\x00 brotli")
    await bucket.put("9/1/4/junk.srt", b"junk, not a frame")
    paths = [key, "9/1/3/legacy.srt.brotli", "9/1/4/junk.srt", "9/9/9/missing.srt"]
    for path in paths:
        result = await rig.engine.enqueue("migrate_compression", {"path": path})
        assert (await until_done(env.pool, result.id))["state"] == "succeeded"
    migrated = await bucket.get(key)
    assert migrated is not None and migrated.startswith(ZSTD_MAGIC)  # no signature any more
    assert await rig.store.read(key) == text
    assert await bucket.get("9/1/3/legacy.srt.brotli") == b"\x1b\x00 brotli"
    assert await bucket.get("9/1/4/junk.srt") == b"junk, not a frame"
    # Already current: left exactly as it is.
    again = await rig.engine.enqueue("migrate_compression", {"path": key})
    assert (await until_done(env.pool, again.id))["state"] == "succeeded"
    assert await bucket.get(key) == migrated
    # Every key the storage would refuse is refused at enqueue, the temporary prefix included.
    for refused in ("../escape.srt", ".tmp-x", "1/2/3/.tmp-abc.srt"):
        with pytest.raises(ValidationError):
            await rig.engine.enqueue("migrate_compression", {"path": refused})


def test_the_storage_job_table(env: CatalogueEnv) -> None:
    registry = Registry()
    store = SubtitleStore(s3("http://127.0.0.1:9", "unused"), Codec(), env.pool)
    register_storage_jobs(registry, env.resources, store)
    table = {
        s.name: (s.queue, s.lock_key is not None, s.unique_key is not None)
        for s in registry.specs.values()
    }
    assert table == {
        "download_subtitle": ("fetch-subtitles", False, True),
        "store_subtitle": ("store-subtitle", True, False),
        "migrate_compression": ("store-subtitle", True, True),
        "train_dictionary": ("store-subtitle", True, True),
    }
    assert all(s.retry == DEFAULT_RETRY for s in registry.specs.values())


async def test_stores_finishing_together_at_the_threshold_queue_one_training(
    env: CatalogueEnv, bucket: S3Storage
) -> None:
    # Stores finishing at once: the first one counts the stored population while the others keep
    # finishing. An increment made during that count must not be lost, or the threshold is never
    # reached and the first dictionary is never trained. The race depends on timing, so the count
    # is made slow (100,000 unstored subtitles to scan) and the whole thing is tried ten times.
    store = SubtitleStore(bucket, Codec(), env.pool)
    show = await env.add_show(3)
    ids = [await add_subtitle(env.pool, n, show_id=show) for n in range(60)]
    await env.pool.execute(
        """INSERT INTO subtitles (episode_id, scene, version, completed, completion_pct,
                                  hearing_impaired, corrected, download_uri, language)
           SELECT episode_id, scene, version, completed, completion_pct, hearing_impaired,
                  corrected, download_uri || '/' || n, language
           FROM subtitles, generate_series(1, 100000) AS n WHERE id = $1""",
        ids[0],
    )

    async def all_at_once(auto: AutoTrain) -> list[str]:
        queued: list[str] = []

        async def enqueue(name: str, args: dict[str, Any]) -> None:
            queued.append(name)

        async def one_store(sub_id: int) -> None:
            await env.pool.execute(
                "UPDATE subtitles SET storage_path = 'k', stored_at = now() WHERE id = $1", sub_id
            )
            await auto.stored(enqueue)

        await env.pool.execute(
            "UPDATE subtitles SET storage_path = NULL, stored_at = NULL WHERE id = ANY($1)", ids
        )
        await asyncio.gather(*(one_store(i) for i in ids))
        return queued

    for attempt in range(10):
        queued = await all_at_once(AutoTrain(store, train_after=len(ids)))
        assert queued == [TRAIN_JOB], f"attempt {attempt}: training queued {len(queued)} times"


async def test_after_a_restart_the_next_training_waits_for_the_population_to_double(
    env: CatalogueEnv, bucket: S3Storage
) -> None:
    # Ten subtitles were stored before the newest dictionary, one of them by the original system
    # (no stored_at): a restarted daemon trains again once twenty are stored, not at train_after.
    store = SubtitleStore(bucket, Codec(), env.pool)
    show = await env.add_show(3)
    ids = [await add_subtitle(env.pool, n, show_id=show) for n in range(20)]
    await env.pool.execute(
        """UPDATE subtitles SET storage_path = 'k',
               stored_at = CASE WHEN id = $2 THEN NULL ELSE now() - interval '1 hour' END
           WHERE id = ANY($1)""",
        ids[:10],
        ids[0],
    )
    await save_dictionary(env.pool, build_dictionary(sample_files(120), size=4096), trained_on=10)
    await store.load_dictionaries()
    auto = AutoTrain(store, train_after=5)
    queued: list[str] = []

    async def enqueue(name: str, args: dict[str, Any]) -> None:
        queued.append(name)

    for n, sub_id in enumerate(ids[10:], start=11):
        await env.pool.execute(
            "UPDATE subtitles SET storage_path = 'k', stored_at = now() WHERE id = $1", sub_id
        )
        await auto.stored(enqueue)
        assert queued == ([TRAIN_JOB] if n == 20 else []), f"after {n} stored"
