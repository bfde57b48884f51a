"""LocalStorage on a temporary directory: round trips, key safety, atomic replacement, limits."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from addicted_jobs.storage.base import InvalidKey, Storage, StorageError, object_key
from addicted_jobs.storage.local import LocalStorage

KEY = object_key(42, 3, 7, "0b4f4cc2-9a63-4b2e-8d37-3a4bd6d1e0f1")


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def test_round_trip(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    assert isinstance(storage, Storage)
    assert await storage.get(KEY) is None
    assert await storage.exists(KEY) is False
    payload = os.urandom(100_000)
    await storage.put(KEY, payload)
    assert (
        tmp_path / "42" / "3" / "7" / "0b4f4cc2-9a63-4b2e-8d37-3a4bd6d1e0f1.srt"
    ).read_bytes() == payload
    assert await storage.exists(KEY) is True
    assert await storage.get(KEY) == payload
    await storage.put(KEY, b"replaced")
    assert await storage.get(KEY) == b"replaced"
    await storage.delete(KEY)
    assert await storage.get(KEY) is None and await storage.exists(KEY) is False
    await storage.delete(KEY)  # deleting what is gone is fine, as in S3
    await storage.put("empty.srt", b"")
    assert await storage.get("empty.srt") == b""
    assert _files(tmp_path) == ["empty.srt"]  # no temporary files left behind
    await storage.close()


async def test_directories_are_not_objects(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put(KEY, b"x")
    assert await storage.get("42/3") is None
    assert await storage.exists("42/3") is False
    await storage.delete("42/3")
    assert await storage.get(f"{KEY}/below-a-file") is None
    assert await storage.get(KEY) == b"x"


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "../outside.srt",
        "a/../../outside.srt",
        "a//b.srt",
        "a/./b.srt",
        "a/",
        "a\\b",
        "a\nb",
    ],
)
async def test_unsafe_keys_are_refused(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(tmp_path / "root")
    with pytest.raises(InvalidKey):
        await storage.put(key, b"x")
    with pytest.raises(InvalidKey):
        await storage.get(key)
    assert not (tmp_path / "outside.srt").exists()


async def test_temporary_file_names_are_not_addressable(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="reserved"):
        await LocalStorage(tmp_path).put("a/.tmp-123", b"x")


async def test_failed_write_keeps_the_old_object_and_leaves_no_debris(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put(KEY, b"old, complete version")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(StorageError, match="No space left"):
        await storage.put(KEY, b"new version that never lands")
    monkeypatch.undo()
    assert await storage.get(KEY) == b"old, complete version"
    assert _files(tmp_path) == [KEY]


async def test_concurrent_writers_of_one_key_leave_one_whole_version(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    versions = [bytes([n]) * 200_000 for n in range(20)]
    await asyncio.gather(*(storage.put(KEY, v) for v in versions))
    assert await storage.get(KEY) in versions
    assert _files(tmp_path) == [KEY]


async def test_oversized_object_is_refused(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, max_object_size=1000)
    await storage.put(KEY, bytes(1000))
    assert await storage.get(KEY) == bytes(1000)
    await storage.put(KEY, bytes(1001))
    with pytest.raises(StorageError, match="1001 bytes"):
        await storage.get(KEY)


async def test_unreadable_object_is_a_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put(KEY, b"x")

    def denied(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(StorageError, match=r"local get .*Permission denied"):
        await storage.get(KEY)


async def test_without_fsync(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, fsync=False)
    await storage.put(KEY, b"fast path for tests and benchmarks")
    assert await storage.get(KEY) == b"fast path for tests and benchmarks"
