"""Object storage on any S3-compatible endpoint (R2, MinIO, AWS) through one aioboto3 client,
with bounded retries so an outage shows up as a clear StorageError, never a half-done write.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Self, TypeVar

import aioboto3
import aiohttp
import botocore.exceptions
import structlog
from botocore.config import Config

from addicted_jobs.storage.base import StorageError, validate_key

log = structlog.get_logger(__name__)

T = TypeVar("T")
RetryHook = Callable[[str, str, int, BaseException], None]
"""Called as (operation, key, failed attempt number, error) before each backoff sleep."""

DEFAULT_MAX_OBJECT_SIZE = 256 * 1024 * 1024
# Error codes worth another attempt even when the status is 4xx: throttling and transient faults.
_RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequests",
        "TooManyRequestsException",
        "SlowDown",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "RequestTimeout",
        "BadDigest",  # the body was damaged on the way; sending it again is the fix
    }
)
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    botocore.exceptions.ConnectionError,  # refused, connect timeout, TLS, proxy
    botocore.exceptions.HTTPClientError,  # read timeout, connection closed, body cut short
    botocore.exceptions.IncompleteReadError,
    aiohttp.ClientError,
    TimeoutError,
    ConnectionError,
)


def _error_code(exc: BaseException) -> tuple[str, int]:
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def is_retryable(exc: BaseException) -> bool:
    """Throttling, 5xx and transport failures are worth another attempt; the rest are not."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code, status = _error_code(exc)
        return status >= 500 or status == 429 or code in _RETRYABLE_CODES
    return isinstance(exc, _TRANSPORT_ERRORS)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class S3Storage:
    """A bucket on an S3-compatible endpoint. Use `async with` or `start()`/`close()`."""

    def __init__(
        self,
        endpoint_url: str | None,
        bucket: str,
        region: str,
        access_key_id: str,
        secret_access_key: str,
        *,
        create_bucket: bool = False,
        max_attempts: int = 4,
        backoff_base: float = 0.05,
        backoff_max: float = 0.5,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_pool_connections: int = 16,
        max_object_size: int = DEFAULT_MAX_OBJECT_SIZE,
        on_retry: RetryHook | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.bucket = bucket
        self._endpoint_url = endpoint_url or None
        self._region = region
        self._credentials = (access_key_id, secret_access_key)
        self._create_bucket = create_bucket
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._max_object_size = max_object_size
        self._on_retry = on_retry
        self._random = random.Random()
        self._config = Config(
            region_name=region,
            signature_version="s3v4",
            # Path style and unsigned payloads, without the flexible (CRC) checksums newer
            # botocore adds by default: what R2 and MinIO accept. Content-MD5 is sent instead.
            s3={"addressing_style": "path", "payload_signing_enabled": False},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max_pool_connections,
            # We retry ourselves, so the policy is visible, testable and bounded in one place.
            retries={"total_max_attempts": 1, "mode": "standard"},
        )
        self._stack: AsyncExitStack | None = None
        self._client: Any = None

    async def start(self) -> None:
        """Open the client (once per lifetime) and, if asked, create the bucket."""
        if self._client is not None:
            return
        stack = AsyncExitStack()
        session = aioboto3.Session(
            aws_access_key_id=self._credentials[0],
            aws_secret_access_key=self._credentials[1],
            region_name=self._region,
        )
        self._client = await stack.enter_async_context(
            session.client("s3", endpoint_url=self._endpoint_url, config=self._config)
        )
        self._stack = stack
        if self._create_bucket:
            try:
                await self._retrying("create bucket", "", self._ensure_bucket)
            except BaseException:
                await self.close()
                raise

    async def _ensure_bucket(self, client: Any) -> None:
        try:
            await client.head_bucket(Bucket=self.bucket)
            return
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc)[1] != 404:
                raise
        extra: dict[str, Any] = {}
        if self._region not in ("us-east-1", "auto", ""):
            extra["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
        try:
            await client.create_bucket(Bucket=self.bucket, **extra)
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc)[0] != "BucketAlreadyOwnedByYou":
                raise

    async def close(self) -> None:
        """Release the client's connections. Safe to call more than once."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _backoff(self, attempt: int) -> float:
        # "Equal jitter": the wait always grows, and concurrent writers spread out.
        ceiling = min(self._backoff_max, self._backoff_base * (1 << (attempt - 1)))
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    async def _retrying(self, op: str, key: str, call: Callable[[Any], Awaitable[T]]) -> T:
        if self._client is None:
            raise StorageError(f"S3 {op} {key!r}: storage not started (call start() first)")
        attempt = 0
        while True:
            attempt += 1
            try:
                return await call(self._client)
            except StorageError:
                raise
            except Exception as exc:
                where = f"S3 {op} s3://{self.bucket}/{key}"
                if not is_retryable(exc):
                    raise StorageError(f"{where} failed: {_describe(exc)}") from exc
                if attempt >= self._max_attempts:
                    raise StorageError(
                        f"{where} failed after {attempt} attempts: {_describe(exc)}"
                    ) from exc
                delay = self._backoff(attempt)
                log.warning(
                    "s3_retry", op=op, key=key, attempt=attempt, delay=delay, error=_describe(exc)
                )
                if self._on_retry is not None:
                    self._on_retry(op, key, attempt, exc)
                await asyncio.sleep(delay)

    async def put(self, key: str, data: bytes) -> None:
        """Store `data`; returns only after S3 acknowledged the whole, MD5-verified object."""
        validate_key(key)
        body = bytes(data)
        digest = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()

        async def call(client: Any) -> None:
            await client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentMD5=digest)

        await self._retrying("put", key, call)

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, or None if the bucket has no such key."""
        validate_key(key)

        async def call(client: Any) -> bytes | None:
            try:
                response = await client.get_object(Bucket=self.bucket, Key=key)
            except botocore.exceptions.ClientError as exc:
                if _error_code(exc)[0] == "NoSuchKey":
                    return None
                raise
            async with response["Body"] as body:
                length = response.get("ContentLength")
                if length is not None and length > self._max_object_size:
                    raise StorageError(
                        f"S3 object s3://{self.bucket}/{key} is {length} bytes, "
                        f"over the {self._max_object_size} limit"
                    )
                data: bytes = await body.read()
            return data

        return await self._retrying("get", key, call)

    async def exists(self, key: str) -> bool:
        validate_key(key)

        async def call(client: Any) -> bool:
            try:
                await client.head_object(Bucket=self.bucket, Key=key)
            except botocore.exceptions.ClientError as exc:
                if _error_code(exc)[1] == 404:
                    return False
                raise
            return True

        return await self._retrying("exists", key, call)

    async def delete(self, key: str) -> None:
        """Delete the object; a missing key is not an error."""
        validate_key(key)

        async def call(client: Any) -> None:
            await client.delete_object(Bucket=self.bucket, Key=key)

        await self._retrying("delete", key, call)
