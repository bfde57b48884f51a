"""Object storage in a local directory, the embedded default: one file per key, written
atomically so a crash leaves either the old object or the new one, never a torn file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from pathlib import Path

from addicted_jobs.storage.base import TEMP_PREFIX, StorageError, validate_key

DEFAULT_MAX_OBJECT_SIZE = 256 * 1024 * 1024
# Temporary files live beside their target (rename is only atomic within one file system)
# under a prefix validate_key refuses.
_TEMP_PREFIX = TEMP_PREFIX


class LocalStorage:
    """Files under `root`, keyed by relative path. Blocking I/O runs in worker threads."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        fsync: bool = True,
        max_object_size: int = DEFAULT_MAX_OBJECT_SIZE,
    ) -> None:
        self.root = Path(root).absolute()
        self._fsync = fsync
        self._max_object_size = max_object_size

    def _path(self, key: str) -> Path:
        validate_key(key)  # refuses the temporary-file prefix too
        return self.root / key

    async def put(self, key: str, data: bytes) -> None:
        """Write `data` under `key`; returns once it is on disk (fsync'd, renamed into place)."""
        path = self._path(key)
        try:
            await asyncio.to_thread(self._write, path, bytes(data))
        except OSError as exc:
            raise StorageError(f"local put {key!r} failed: {exc}") from exc

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
                tmp.flush()
                if self._fsync:
                    os.fsync(tmp.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        if self._fsync:
            # The rename is only durable once the directory entry is.
            _fsync_directory(path.parent)

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is no object under `key`."""
        path = self._path(key)
        try:
            return await asyncio.to_thread(self._read, path, key)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StorageError(f"local get {key!r} failed: {exc}") from exc

    def _read(self, path: Path, key: str) -> bytes:
        with path.open("rb") as src:
            size = os.fstat(src.fileno()).st_size
            if size > self._max_object_size:
                raise StorageError(
                    f"local object {key!r} is {size} bytes, over the {self._max_object_size} limit"
                )
            # Read one byte past the limit so a file growing under us is still caught.
            data = src.read(self._max_object_size + 1)
        if len(data) > self._max_object_size:
            raise StorageError(f"local object {key!r} grew past the {self._max_object_size} limit")
        return data

    async def exists(self, key: str) -> bool:
        path = self._path(key)
        # A single stat is cheaper than a thread hop.
        return path.is_file()

    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error (as in S3)."""
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except IsADirectoryError:
            return
        except OSError as exc:
            raise StorageError(f"local delete {key!r} failed: {exc}") from exc

    async def start(self) -> None:
        """Nothing to open (directories are made on the first put); honours the Storage protocol."""

    async def close(self) -> None:
        """Nothing to release; present to honour the Storage protocol."""


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
