"""The storage operations and the `storage` command: a stored subtitle read back byte for byte
(through the socket and the real command line), dictionary training from a directory and from
stored subtitles, and every dictionary staying readable after a restart.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import addicted_jobs.cli.subtitles as cli_storage
from addicted_jobs import cli
from addicted_jobs.catalog.subtitles import mark_stored
from addicted_jobs.control.client import ControlClient, DaemonError
from addicted_jobs.control.op import bind
from addicted_jobs.control.server import ControlServer, Peer
from addicted_jobs.jobs import JobRequest
from addicted_jobs.settings import ConfigError, Settings
from addicted_jobs.storage.compression import Codec
from addicted_jobs.storage.local import LocalStorage
from addicted_jobs.storage.s3 import S3Storage
from addicted_jobs.storage.setup import build_codec, build_storage, open_subtitle_store
from addicted_jobs.storage.store import SubtitleStore
from addicted_jobs.storage.training import NotEnoughSamples, TrainingOptions
from addicted_jobs.tasks.ops import storage as storage_ops
from addicted_jobs.tasks.ops.storage import StorageOps, storage_get
from addicted_jobs.tasks.storage_training import gather_and_train
from tests.support.storage import add_subtitle, sample_files

OPTIONS = TrainingOptions(dict_size=4096, min_samples=20)


async def put_stored(store: SubtitleStore, subtitle_id: int, number: int, data: bytes) -> str:
    """What store_subtitle does, without the engine."""
    row = await store.pool.fetchrow("SELECT unique_id FROM subtitles WHERE id = $1", subtitle_id)
    assert row is not None
    key = f"1/1/{number}/{row['unique_id']}.srt"
    await store.write(key, data)
    await mark_stored(store.pool, subtitle_id, key)
    return key


@pytest.fixture
async def store(db_pool: asyncpg.Pool, tmp_path: Path) -> SubtitleStore:
    store = SubtitleStore(LocalStorage(tmp_path / "objects", fsync=False), Codec(), db_pool)
    await store.load_dictionaries()
    return store


@pytest.fixture
def queued() -> list[JobRequest]:
    return []


@pytest.fixture
async def server(
    db_pool: asyncpg.Pool, store: SubtitleStore, sock_dir: Path, queued: list[JobRequest]
) -> AsyncIterator[ControlServer]:
    async def enqueue_many(requests: list[JobRequest]) -> None:
        queued.extend(requests)

    ops = bind(StorageOps(db_pool, store, options=OPTIONS, enqueue_many=enqueue_many))
    control = ControlServer(sock_dir / "c.sock", ops)
    await control.start()
    yield control
    await control.stop(grace=1.0)


async def test_get_returns_the_bytes_as_downloaded(
    db_pool: asyncpg.Pool, store: SubtitleStore
) -> None:
    data = b"1\r\n00:00:01,000 --> 00:00:02,000\r\n\xe9t\xe9 \xff\r\n"  # Latin-1, CRLF
    subtitle_id = await add_subtitle(db_pool, 1)
    key = await put_stored(store, subtitle_id, 1, data)
    result = await storage_get(db_pool, store, subtitle_id)
    assert base64.b64decode(result["content"]) == data
    assert (result["path"], result["size"], result["encoding"]) == (key, len(data), "base64")
    with pytest.raises(storage_ops.SubtitleNotFound):
        await storage_get(db_pool, store, 9999)
    unstored = await add_subtitle(db_pool, 2)
    with pytest.raises(storage_ops.NotStored, match="download_subtitle subtitle_id="):
        await storage_get(db_pool, store, unstored)
    await store.storage.delete(key)
    with pytest.raises(storage_ops.NotStored, match="missing"):
        await storage_get(db_pool, store, subtitle_id)


async def test_the_command_line_gets_a_subtitle_through_the_socket(
    db_pool: asyncpg.Pool,
    store: SubtitleStore,
    server: ControlServer,
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    data = sample_files(1, seed=5)[0] + b"\x00\xff"
    subtitle_id = await add_subtitle(db_pool, 1)
    await put_stored(store, subtitle_id, 1, data)
    socket = ["--socket", str(server.path)]
    out = tmp_path / "got.srt"
    code = await asyncio.to_thread(
        cli.main, ["storage", "get", str(subtitle_id), "-o", str(out), *socket]
    )
    assert code == 0 and out.read_bytes() == data
    # A file that cannot be written is the file system's refusal (1), not a usage error (2).
    code = await asyncio.to_thread(
        cli.main, ["storage", "get", str(subtitle_id), "-o", str(tmp_path), *socket]
    )
    assert code == 1 and b"cannot write" in capsysbinary.readouterr().err
    code = await asyncio.to_thread(cli.main, ["storage", "get", str(subtitle_id), *socket])
    assert code == 0 and capsysbinary.readouterr().out == data
    assert await asyncio.to_thread(cli.main, ["storage", "get", "9999", *socket]) == 1
    for usage in (
        ["storage", "get"],
        ["storage", "get", "1", "--dry-run"],
        ["storage", "train-dictionary", "5"],
    ):
        assert await asyncio.to_thread(cli.main, [*usage, *socket]) == 2
    assert cli_storage.GET_OP == storage_ops.GET_OP and cli_storage.TRAIN_OP == storage_ops.TRAIN_OP


async def test_a_file_bigger_than_one_reply_comes_in_parts(
    db_pool: asyncpg.Pool, store: SubtitleStore, server: ControlServer, tmp_path: Path
) -> None:
    data = os.urandom(storage_ops.PART_BYTES * 2 + 12345)
    subtitle_id = await add_subtitle(db_pool, 1)
    await put_stored(store, subtitle_id, 1, data)
    first = await storage_get(db_pool, store, subtitle_id)
    assert first["more"] and len(base64.b64decode(first["content"])) == storage_ops.PART_BYTES
    assert first["size"] == len(data)
    last = await storage_get(db_pool, store, subtitle_id, offset=2 * storage_ops.PART_BYTES)
    assert not last["more"] and base64.b64decode(last["content"]) == data[-12345:]
    with pytest.raises(ValueError, match="past the end"):
        await storage_get(db_pool, store, subtitle_id, offset=len(data) + 1)
    out = tmp_path / "big.bin"
    code = await asyncio.to_thread(
        cli.main, ["storage", "get", str(subtitle_id), "-o", str(out), "--socket", str(server.path)]
    )
    assert code == 0 and out.read_bytes() == data


async def test_operations_answer_with_protocol_errors(server: ControlServer) -> None:
    async with ControlClient(server.path, 10.0) as client:
        cases: list[tuple[str, dict[str, Any], str]] = [
            ("storage-get", {"subtitle_id": 0}, "invalid_args"),
            ("storage-get", {"subtitle_id": 77}, "not_found"),
            ("storage-train-dictionary", {"from_dir": "relative/dir"}, "invalid_args"),
            ("storage-train-dictionary", {"from_dir": "/no/such/dir"}, "invalid_args"),
            ("storage-train-dictionary", {"from_stored": 5, "from_dir": "/tmp"}, "invalid_args"),
            ("storage-train-dictionary", {}, "conflict"),  # nothing stored to train on
        ]
        for op, args, code in cases:
            with pytest.raises(DaemonError) as caught:
                await client.call(op, args)
            assert caught.value.code == code, (op, args, caught.value.message)


async def test_training_from_a_directory_then_from_stored_subtitles(
    db_pool: asyncpg.Pool,
    store: SubtitleStore,
    server: ControlServer,
    tmp_path: Path,
    queued: list[JobRequest],
) -> None:
    # A directory-trained dictionary is measured on stored subtitles, never on its own files.
    stored = sample_files(12, seed=8)
    plain = [
        await put_stored(store, await add_subtitle(db_pool, n), n, data)
        for n, data in enumerate(stored, start=1)
    ]
    corpus = tmp_path / "corpus"
    (corpus / "nested").mkdir(parents=True)
    for n, data in enumerate(sample_files(60, seed=6)):
        (corpus / ("nested" if n % 2 else "") / f"{n}.srt").write_bytes(data)
    async with ControlClient(server.path, 30.0) as client:
        dry = await client.call(
            "storage-train-dictionary", {"from_dir": str(corpus), "dry_run": True}
        )
        assert not dry["adopted"] and dry["reason"].startswith("dry run")
        assert store.newest is None
        first = await client.call("storage-train-dictionary", {"from_dir": str(corpus)})
    assert first["adopted"] and first["previous_id"] is None and first["gain_vs_plain"] > 1.02
    assert (first["trained_on"], first["held_out"]) == (60, 12)
    # The objects stored before the first dictionary are queued for rewriting.
    assert first["migrations_queued"] == 12
    assert [(r.name, r.args) for r in queued] == [
        ("migrate_compression", {"path": path}) for path in plain
    ]
    assert store.newest is not None and store.newest.dictionary.id == first["dictionary_id"]
    # Objects written now carry the first dictionary; the next training measures against it.
    files = sample_files(40, seed=7)
    for n, data in enumerate(files):
        await put_stored(store, await add_subtitle(db_pool, n), n, data)
    second = await gather_and_train(store, limit=40, options=OPTIONS)
    assert second.previous_id == first["dictionary_id"] and second.gain_vs_previous is not None
    assert second.adopted == (second.gain_vs_previous >= OPTIONS.min_improvement)
    with pytest.raises(NotEnoughSamples):
        await gather_and_train(store, limit=5, options=OPTIONS)


def _peer_line(args: dict[str, object]) -> bytes:
    return json.dumps({"v": 1, "id": 1, "op": storage_ops.TRAIN_OP, "args": args}).encode()


async def test_from_dir_reads_only_what_the_requesting_user_could_read(
    db_pool: asyncpg.Pool, store: SubtitleStore, server: ControlServer, reachable_tmp: Path
) -> None:
    for n, data in enumerate(sample_files(30, seed=9)):  # something stored to measure on
        await put_stored(store, await add_subtitle(db_pool, n), n, data)
    corpus = reachable_tmp / "corpus"
    secret = corpus / "secret"
    secret.mkdir(parents=True)
    for n, data in enumerate(sample_files(60, seed=10)):
        path = (corpus if n < 10 else secret) / f"{n}.srt"
        path.write_bytes(data)
        path.chmod(0o644 if n < 5 else 0o600)  # 5 world-readable files, 55 private ones
    corpus.chmod(0o755)
    secret.chmod(0o755)
    somebody = Peer(pid=1, uid=65534, gid=65534)  # not the files' owner, not root
    reply = json.loads(await server.handle_line(_peer_line({"from_dir": str(corpus)}), somebody))
    assert reply["ok"] is False and reply["error"]["code"] == "conflict"
    assert "5 samples found" in reply["error"]["message"]  # the private ones were not read
    assert store.newest is None
    # Its own files, or a directory it cannot search, give nothing either.
    secret.chmod(0o700)
    reply = json.loads(await server.handle_line(_peer_line({"from_dir": str(secret)}), somebody))
    assert reply["error"]["code"] == "invalid_args" and "not readable by uid 65534" in str(reply)
    # The owner (here root) may train on all of it.
    owner = Peer(pid=1, uid=os.getuid(), gid=os.getgid())
    reply = json.loads(
        await server.handle_line(_peer_line({"from_dir": str(corpus), "dry_run": True}), owner)
    )
    assert reply["ok"] is True and reply["result"]["trained_on"] == 60


async def test_a_directory_dictionary_that_does_not_beat_the_stored_sample_is_not_adopted(
    db_pool: asyncpg.Pool, store: SubtitleStore, server: ControlServer, tmp_path: Path
) -> None:
    junk = tmp_path / "junk"
    junk.mkdir()
    for n in range(60):  # compressible to itself, useless for subtitles
        (junk / f"{n}.bin").write_bytes(bytes([n % 7]) * 4096 + os.urandom(64))
    async with ControlClient(server.path, 30.0) as client:
        nothing_stored = await client.call("storage-train-dictionary", {"from_dir": str(junk)})
        assert not nothing_stored["adopted"] and "no stored subtitles" in nothing_stored["reason"]
        for n, data in enumerate(sample_files(40, seed=11)):
            await put_stored(store, await add_subtitle(db_pool, n), n, data)
        report = await client.call("storage-train-dictionary", {"from_dir": str(junk)})
    assert report["held_out"] == 40 and report["gain_vs_plain"] < OPTIONS.min_gain
    assert not report["adopted"] and store.newest is None


async def test_every_dictionary_stays_readable_after_a_restart(
    db_pool: asyncpg.Pool, store: SubtitleStore, tmp_path: Path
) -> None:
    files = sample_files(90, seed=8)
    keys = []
    for round_ in range(3):  # plain, then two successive dictionaries
        for n in range(30 * round_, 30 * round_ + 30):
            keys.append(await put_stored(store, await add_subtitle(db_pool, n), n, files[n]))
        if round_ < 2:
            forced = TrainingOptions(dict_size=4096, min_samples=20, min_gain=0, min_improvement=0)
            assert (await gather_and_train(store, limit=30, options=forced)).adopted
    fresh = SubtitleStore(LocalStorage(tmp_path / "objects"), Codec(), db_pool)
    loaded = await fresh.load_dictionaries()
    assert len(loaded) == 2 and fresh.codec.dictionaries.writer_id == loaded[-1].dictionary.id
    for key, data in zip(keys, files, strict=True):
        assert await fresh.read(key) == data


async def test_the_store_is_built_from_the_settings(db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    local = Settings(state={"dir": tmp_path}, storage={"max_object_bytes": 4096})
    store = await open_subtitle_store(local, db_pool)
    assert isinstance(store.storage, LocalStorage)
    assert store.storage.root == tmp_path / "subtitles" and store.codec.max_output_size == 4096
    await store.close()
    s3 = Settings(storage={"backend": "s3", "s3": {"bucket": "b", "endpoint_url": "http://x"}})
    assert isinstance(build_storage(s3), S3Storage)
    with pytest.raises(ConfigError, match="bucket"):
        build_storage(Settings(storage={"backend": "s3"}))
    wrong = tmp_path / "not-a-dictionary"
    wrong.write_bytes(b"nope")
    with pytest.raises(ConfigError, match="original_dictionary"):
        build_codec(Settings(storage={"original_dictionary": wrong}))


async def test_storage_get_output_never_writes_through_a_planted_symlink(
    db_pool: asyncpg.Pool, store: SubtitleStore, server: ControlServer, tmp_path: Path
) -> None:
    """The temporary file beside `-o` was `.NAME.PID.tmp`: another local user who planted a
    symlink under that name (in /tmp, say) had this command write the subtitle over its target."""
    data = sample_files(1, seed=7)[0]
    subtitle_id = await add_subtitle(db_pool, 1)
    await put_stored(store, subtitle_id, 1, data)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / f".got.srt.{os.getpid()}.tmp").symlink_to(victim)  # the CLI runs in this process
    out = shared / "got.srt"
    code = await asyncio.to_thread(
        cli.main, ["storage", "get", str(subtitle_id), "-o", str(out), "--socket", str(server.path)]
    )
    assert code == 0 and out.read_bytes() == data and not out.is_symlink()
    assert victim.read_bytes() == b"precious"
    assert sorted(p.name for p in shared.iterdir()) == [f".got.srt.{os.getpid()}.tmp", "got.srt"]
