"""The small contract every storage backend honours, and the object key layout.

Backends store opaque bytes (already compressed); they never interpret them.
"""

from __future__ import annotations

import uuid
from typing import Protocol, runtime_checkable

# S3 limits keys to 1024 bytes of UTF-8; holding local files to the same rule keeps the
# backends interchangeable.
MAX_KEY_BYTES = 1024


# Temporary files of the local backend live beside their target under this prefix, which no
# object name produced by object_key() starts with; no key may use it.
TEMP_PREFIX = ".tmp-"


class StorageError(Exception):
    """A backend could not do what was asked (outage, refusal, oversized object)."""


class InvalidKey(StorageError, ValueError):
    """The key would escape the storage root or is not a clean relative path."""


@runtime_checkable
class Storage(Protocol):
    """Key/value object storage. `put` returns only once the object is durably stored.
    `start` before the first call, `close` at the end; both may do nothing."""

    async def start(self) -> None: ...

    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes | None: ...

    async def delete(self, key: str) -> None: ...

    async def exists(self, key: str) -> bool: ...

    async def close(self) -> None: ...


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a clean relative path, else raise InvalidKey.

    Rejects what could escape a directory root (`..`, absolute paths) and what S3 and a
    file system would treat differently (empty parts, `.`, backslashes, control characters).
    """
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"storage key must be a non-empty string, got {key!r}")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(f"storage key longer than {MAX_KEY_BYTES} bytes: {key[:80]!r}...")
    if key.startswith("/"):
        raise InvalidKey(f"storage key must be relative: {key!r}")
    if "\\" in key or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise InvalidKey(f"storage key contains a backslash or control character: {key!r}")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise InvalidKey(f"storage key has an empty, '.' or '..' part: {key!r}")
    if key.rsplit("/", 1)[-1].startswith(TEMP_PREFIX):
        # Checked here, not only by the local backend: a job naming such a key must be refused
        # when it is enqueued, not fail on every attempt.
        raise InvalidKey(
            f"storage key {key!r} uses the reserved temporary-file prefix {TEMP_PREFIX!r}"
        )
    return key


def _non_negative(name: str, value: int) -> int:
    # bool is an int subclass; True as a season number is always a bug upstream.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidKey(f"{name} must be a non-negative integer, got {value!r}")
    return value


def object_key(show_id: int, season: int, episode: int, unique_id: uuid.UUID | str) -> str:
    """`{show_id}/{season}/{episode}/{unique_id}.srt`, the original system's layout.

    Numbers are unpadded and the id is the canonical lower-case dashed UUID, so keys written
    by the original system and by us address the same objects.
    """
    _non_negative("show_id", show_id)
    _non_negative("season", season)
    _non_negative("episode", episode)
    try:
        uid = unique_id if isinstance(unique_id, uuid.UUID) else uuid.UUID(unique_id)
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidKey(f"unique_id is not a UUID: {unique_id!r}") from exc
    return validate_key(f"{show_id}/{season}/{episode}/{uid}.srt")
