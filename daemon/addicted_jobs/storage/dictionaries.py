"""Persistence of the zstd dictionaries in `storage_dictionaries`: every dictionary ever used
stays loadable, because objects written with it name it in their frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from addicted_jobs.storage.compression import Dictionary

if TYPE_CHECKING:
    from addicted_jobs.db import Executor


@dataclass(frozen=True)
class StoredDictionary:
    """A dictionary with what was recorded when it was trained."""

    dictionary: Dictionary
    trained_on: int
    sample_ratio: float | None
    created_at: datetime


async def load_dictionaries(db: Executor) -> list[StoredDictionary]:
    """Every stored dictionary, oldest first: the last one is the one to write with."""
    rows = await db.fetch(
        "SELECT id, data, trained_on, sample_ratio, created_at"
        " FROM storage_dictionaries ORDER BY created_at, id"
    )
    return [
        StoredDictionary(
            dictionary=Dictionary(row["id"], bytes(row["data"])),
            trained_on=row["trained_on"],
            sample_ratio=row["sample_ratio"],
            created_at=row["created_at"],
        )
        for row in rows
    ]


async def save_dictionary(
    db: Executor, dictionary: Dictionary, *, trained_on: int, sample_ratio: float | None = None
) -> StoredDictionary:
    """Record a new dictionary (it becomes the newest).

    Saving the same dictionary again is a no-op, so a retried training job is harmless; a
    different dictionary under an id already taken is refused rather than silently replacing
    the one old objects need.
    """
    row = await db.fetchrow(
        "INSERT INTO storage_dictionaries (id, data, trained_on, sample_ratio)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING"
        " RETURNING created_at",
        dictionary.id,
        dictionary.data,
        trained_on,
        sample_ratio,
    )
    if row is not None:
        return StoredDictionary(dictionary, trained_on, sample_ratio, row["created_at"])
    existing = await db.fetchrow(
        "SELECT data, trained_on, sample_ratio, created_at FROM storage_dictionaries WHERE id = $1",
        dictionary.id,
    )
    if existing is None or bytes(existing["data"]) != dictionary.data:
        raise ValueError(f"dictionary id {dictionary.id} is already stored with different bytes")
    return StoredDictionary(
        dictionary, existing["trained_on"], existing["sample_ratio"], existing["created_at"]
    )
