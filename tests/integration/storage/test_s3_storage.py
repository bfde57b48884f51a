"""S3Storage against moto's S3 server over real HTTP on loopback: the object round trip, the
retry policy, and outages (the server process killed, then restarted or not)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import botocore.exceptions
import pytest

from addicted_jobs.storage.base import InvalidKey, Storage, StorageError, object_key
from addicted_jobs.storage.s3 import S3Storage, is_retryable
from tests.plugins.s3 import S3_ACCESS_KEY_ID, S3_REGION, S3_SECRET_ACCESS_KEY, MotoServer
from tests.support import wait_until

KEY = object_key(42, 3, 7, "0b4f4cc2-9a63-4b2e-8d37-3a4bd6d1e0f1")


def _storage(endpoint: str, bucket: str, **options: Any) -> S3Storage:
    return S3Storage(endpoint, bucket, S3_REGION, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, **options)


async def test_round_trip(s3_settings: dict[str, Any]) -> None:
    payload = os.urandom(300_000)
    async with S3Storage(**s3_settings) as storage:
        assert isinstance(storage, Storage)
        assert await storage.get(KEY) is None
        assert await storage.exists(KEY) is False
        await storage.put(KEY, payload)
        assert await storage.exists(KEY) is True
        assert await storage.get(KEY) == payload
        await storage.put(KEY, b"second version")
        assert await storage.get(KEY) == b"second version"
        await storage.delete(KEY)
        assert await storage.get(KEY) is None
        assert await storage.exists(KEY) is False
        await storage.delete(KEY)  # deleting what is gone is fine, as in S3


async def test_empty_object_and_many_concurrent_puts(s3_settings: dict[str, Any]) -> None:
    async with S3Storage(**s3_settings) as storage:
        await storage.put("empty.srt", b"")
        assert await storage.get("empty.srt") == b""
        keys = [object_key(1, 1, n, f"00000000-0000-4000-8000-{n:012d}") for n in range(40)]
        await asyncio.gather(*(storage.put(k, k.encode() * 100) for k in keys))
        bodies = await asyncio.gather(*(storage.get(k) for k in keys))
        assert bodies == [k.encode() * 100 for k in keys]


async def test_create_bucket_on_start(s3_server: str) -> None:
    async with _storage(s3_server, "made-on-start", create_bucket=True) as storage:
        await storage.put("a/b.srt", b"x")
    # Starting again finds the bucket already there.
    async with _storage(s3_server, "made-on-start", create_bucket=True) as storage:
        assert await storage.get("a/b.srt") == b"x"


async def test_invalid_keys_and_use_before_start(s3_settings: dict[str, Any]) -> None:
    storage = S3Storage(**s3_settings)
    with pytest.raises(StorageError, match="not started"):
        await storage.get(KEY)
    async with storage:
        for bad in ("", "/abs/key.srt", "a/../b.srt", "a//b.srt"):
            with pytest.raises(InvalidKey):
                await storage.put(bad, b"x")
    await storage.close()  # closing twice is harmless


async def test_oversized_object_is_refused_before_reading(s3_settings: dict[str, Any]) -> None:
    async with S3Storage(**s3_settings, max_object_size=1000) as storage:
        await storage.put(KEY, bytes(5000))
        with pytest.raises(StorageError, match="5000 bytes"):
            await storage.get(KEY)


async def test_missing_bucket_fails_at_once_naming_key_and_cause(s3_server: str) -> None:
    retries: list[int] = []
    storage = _storage(s3_server, "no-such-bucket", on_retry=lambda *a: retries.append(a[2]))
    async with storage:
        with pytest.raises(StorageError) as caught:
            await storage.put(KEY, b"x")
    assert KEY in str(caught.value) and "NoSuchBucket" in str(caught.value)
    assert retries == []  # a configuration error is not retried


class _Retries:
    """Records retry callbacks and lets the test wait for the first one."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, BaseException]] = []
        self.first = asyncio.Event()

    def __call__(self, op: str, key: str, attempt: int, error: BaseException) -> None:
        self.calls.append((op, attempt, error))
        self.first.set()

    @property
    def attempts(self) -> list[int]:
        return [attempt for _, attempt, _ in self.calls]


def _outage_storage(server: MotoServer, retries: _Retries, **options: Any) -> S3Storage:
    # By default a retry budget (~100 x 0.2 s) far longer than a restart takes.
    options = {"max_attempts": 100, "backoff_base": 0.02, "backoff_max": 0.2, **options}
    return _storage(server.endpoint_url, server.create_bucket(), on_retry=retries, **options)


async def test_put_during_an_outage_retries_until_the_server_is_back(
    restartable_s3_server: MotoServer,
) -> None:
    server, retries = restartable_s3_server, _Retries()
    payload = os.urandom(200_000)
    async with _outage_storage(server, retries) as storage:
        await storage.put("warm/up.srt", b"leaves a pooled connection behind")
        server.stop()
        put = asyncio.create_task(storage.put(KEY, payload))
        await asyncio.wait_for(retries.first.wait(), timeout=30)
        assert not put.done()
        await asyncio.to_thread(server.start)
        await asyncio.wait_for(put, timeout=60)
        assert await storage.get(KEY) == payload
    assert retries.attempts == list(range(1, len(retries.calls) + 1))
    assert all(op == "put" and is_retryable(error) for op, _, error in retries.calls)


async def test_server_killed_mid_upload_the_retry_stores_the_whole_object(
    restartable_s3_server: MotoServer,
) -> None:
    server, retries = restartable_s3_server, _Retries()
    payload = os.urandom(32 * 1024 * 1024)  # large enough to catch it in flight
    async with _outage_storage(server, retries) as storage:
        before = server.bytes_read()
        put = asyncio.create_task(storage.put(KEY, payload))
        await wait_until(
            lambda: put.done() or server.bytes_read() - before > 1024 * 1024,
            timeout=30,
            interval=0.002,
            message="the server to be reading the upload",
        )
        assert not put.done(), "the upload finished before the server could be killed"
        server.stop()
        await asyncio.wait_for(retries.first.wait(), timeout=30)
        await asyncio.to_thread(server.start)
        await asyncio.wait_for(put, timeout=60)
        stored = await storage.get(KEY)
    assert stored is not None and len(stored) == len(payload) and stored == payload


async def test_put_that_exhausts_its_retries_raises_naming_key_and_cause(
    restartable_s3_server: MotoServer,
) -> None:
    server, retries = restartable_s3_server, _Retries()
    async with _outage_storage(server, retries, max_attempts=3, backoff_base=0.001) as storage:
        await storage.put("other/object.srt", b"before the outage")
        server.stop()
        with pytest.raises(StorageError) as caught:
            await storage.put(KEY, b"never stored")
    message = str(caught.value)
    assert KEY in message and "after 3 attempts" in message and "Could not connect" in message
    assert retries.attempts == [1, 2]
    assert isinstance(caught.value.__cause__, botocore.exceptions.EndpointConnectionError)


def _client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (_client_error("SlowDown", 503), True),
        (_client_error("InternalError", 500), True),
        (_client_error("TooManyRequests", 429), True),
        (_client_error("ThrottlingException", 400), True),
        (_client_error("RequestTimeout", 400), True),
        (_client_error("AccessDenied", 403), False),
        (_client_error("NoSuchBucket", 404), False),
        (_client_error("InvalidArgument", 400), False),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"), True),
        (botocore.exceptions.ReadTimeoutError(endpoint_url="http://x"), True),
        (botocore.exceptions.ConnectTimeoutError(endpoint_url="http://x"), True),
        (botocore.exceptions.ConnectionClosedError(endpoint_url="http://x"), True),
        (botocore.exceptions.IncompleteReadError(actual_bytes=1, expected_bytes=2), True),
        (TimeoutError(), True),
        (ValueError("a bug"), False),
    ],
)
def test_retry_classification(error: BaseException, retryable: bool) -> None:
    assert is_retryable(error) is retryable
