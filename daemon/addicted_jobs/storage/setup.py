"""Builds the subtitle store from `[storage]`: the backend (local files or S3), the codec (with
the original system's dictionary when configured) and the dictionaries saved in the database.
"""

from __future__ import annotations

import asyncpg

from addicted_jobs.settings import ConfigError, Settings
from addicted_jobs.storage.base import Storage
from addicted_jobs.storage.compression import ORIGINAL_DICTIONARY_ID, Codec, Dictionary
from addicted_jobs.storage.local import LocalStorage
from addicted_jobs.storage.store import SubtitleStore


def build_storage(settings: Settings) -> Storage:
    """The configured backend, not started yet (`await start()` it). Raises ConfigError."""
    conf = settings.storage
    if conf.backend == "local":
        return LocalStorage(settings.local_storage_dir, max_object_size=conf.max_object_bytes)
    # Imported here: aioboto3 and botocore take ~0.5 s to import, wasted on local storage.
    from addicted_jobs.storage.s3 import S3Storage

    s3 = conf.s3
    if not s3.bucket:
        raise ConfigError('[storage.s3] bucket: required when [storage] backend = "s3"')
    return S3Storage(
        s3.endpoint_url or None,
        s3.bucket,
        s3.region,
        s3.access_key_id,
        s3.secret_access_key,
        max_object_size=conf.max_object_bytes,
    )


def build_codec(settings: Settings) -> Codec:
    """A codec writing at `[storage] zstd_level`, bounded by `[storage] max_object_bytes`, reading
    the original system's objects when `[storage] original_dictionary` names its dictionary file."""
    conf = settings.storage
    original: bytes | None = None
    if conf.original_dictionary is not None:
        path = conf.original_dictionary
        try:
            original = path.read_bytes()
            found = Dictionary.from_bytes(original).id
        except (OSError, ValueError) as exc:
            raise ConfigError(f"[storage] original_dictionary: cannot use {path}: {exc}") from exc
        if found != ORIGINAL_DICTIONARY_ID:
            raise ConfigError(
                f"[storage] original_dictionary: {path} is dictionary {found}, not the original "
                f"system's srt-dict ({ORIGINAL_DICTIONARY_ID})"
            )
    return Codec(
        original_dictionary=original, max_output_size=conf.max_object_bytes, level=conf.zstd_level
    )


async def open_subtitle_store(settings: Settings, pool: asyncpg.Pool) -> SubtitleStore:
    """Backend started, dictionaries loaded: ready for the storage jobs and `storage get`.
    Close it with `await store.close()` at shutdown."""
    storage = build_storage(settings)
    await storage.start()  # S3 opens its client only: no request is made yet
    store = SubtitleStore(storage, build_codec(settings), pool)
    try:
        await store.load_dictionaries()
    except BaseException:
        await store.close()
        raise
    return store
