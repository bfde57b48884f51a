"""Persistence of zstd dictionaries in `storage_dictionaries`, against a fresh migrated database."""

from __future__ import annotations

import random

import asyncpg
import pytest

from addicted_jobs.storage.compression import Codec, Dictionary, build_dictionary, evaluate_gain
from addicted_jobs.storage.dictionaries import load_dictionaries, save_dictionary


def _samples(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    words = "you know what I mean we have to go now right okay where is he no".split()
    out = []
    for _ in range(count):
        cues = [
            f"{n}\r\n00:{n // 60:02d}:{n % 60:02d},{rng.randint(0, 999):03d} --> "
            f"00:{n // 60:02d}:{n % 60:02d},{rng.randint(0, 999):03d}\r\n"
            + " ".join(rng.choice(words) for _ in range(rng.randint(2, 9)))
            for n in range(1, rng.randint(10, 60))
        ]
        out.append("\r\n\r\n".join(cues).encode())
    return out


@pytest.fixture(scope="module")
def two_dictionaries() -> tuple[Dictionary, Dictionary]:
    first = build_dictionary(_samples(1, 120), size=8 * 1024)
    second = build_dictionary(_samples(2, 120), size=8 * 1024, taken_ids=[first.id])
    return first, second


async def test_empty_then_saved_dictionaries_load_oldest_first(
    db_pool: asyncpg.Pool, two_dictionaries: tuple[Dictionary, Dictionary]
) -> None:
    first, second = two_dictionaries
    assert await load_dictionaries(db_pool) == []
    gain = evaluate_gain(first, _samples(3, 20))
    saved = await save_dictionary(db_pool, first, trained_on=120, sample_ratio=gain)
    async with db_pool.acquire() as conn:
        await save_dictionary(conn, second, trained_on=120)
    loaded = await load_dictionaries(db_pool)
    assert [d.dictionary for d in loaded] == [first, second]
    assert loaded[0] == saved and loaded[0].sample_ratio == pytest.approx(gain)
    assert loaded[1].sample_ratio is None and loaded[1].trained_on == 120
    codec = Codec(d.dictionary for d in loaded)
    assert codec.dictionaries.writer_id == second.id
    assert codec.dictionaries.ids() == {first.id, second.id}


async def test_saving_again_is_idempotent_but_an_id_clash_is_refused(
    db_pool: asyncpg.Pool, two_dictionaries: tuple[Dictionary, Dictionary]
) -> None:
    first, second = two_dictionaries
    saved = await save_dictionary(db_pool, first, trained_on=120, sample_ratio=1.5)
    again = await save_dictionary(db_pool, first, trained_on=999)
    assert again == saved  # the first record stands
    await db_pool.execute(
        "INSERT INTO storage_dictionaries (id, data, trained_on) VALUES ($1, $2, 0)",
        second.id,
        b"other bytes",
    )
    with pytest.raises(ValueError, match=str(second.id)):
        await save_dictionary(db_pool, second, trained_on=1)


async def test_reserved_ids_are_rejected_by_the_schema(db_pool: asyncpg.Pool) -> None:
    for reserved in (0, 32767, 2**31):
        with pytest.raises(asyncpg.CheckViolationError):
            await db_pool.execute(
                "INSERT INTO storage_dictionaries (id, data, trained_on) VALUES ($1, $2, 0)",
                reserved,
                b"x",
            )
