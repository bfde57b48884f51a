"""The Addic7ed credential pool against PostgreSQL: least-used picks, atomic counts, exceeded."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import pytest

from addicted_jobs.catalog.credentials import CredentialPool, NoCredentials


async def _usage(pool: asyncpg.Pool) -> dict[int, tuple[int, int]]:
    rows = await pool.fetch("SELECT id, usage, download_usage FROM addicted_user_credentials")
    return {r["id"]: (r["usage"], r["download_usage"]) for r in rows}


async def test_an_empty_table_is_a_clear_error_naming_the_fix(db_pool: asyncpg.Pool) -> None:
    creds = CredentialPool(db_pool)
    with pytest.raises(NoCredentials, match=r"addicted-jobs credentials add COOKIE"):
        await creds.pick_querying()
    assert await creds.pick_download() is None  # downloads go anonymous instead


async def test_querying_pick_is_the_least_used_of_all_ties_broken_by_id(
    db_pool: asyncpg.Pool,
) -> None:
    creds = CredentialPool(db_pool)
    a, _ = await creds.add("cookie-a")
    b, _ = await creds.add("cookie-b")
    c, _ = await creds.add("cookie-c")
    assert (await creds.pick_querying()).id == a  # all at 0: lowest id
    await db_pool.execute("UPDATE addicted_user_credentials SET usage = 5 WHERE id = $1", a)
    await db_pool.execute(
        "UPDATE addicted_user_credentials SET usage = 2 WHERE id = ANY($1)", [b, c]
    )
    assert (await creds.pick_querying()).id == b
    # An exceeded credential still scrapes: only downloads are limited.
    await creds.mark_exceeded(b)
    await creds.mark_exceeded(c)
    assert (await creds.pick_querying()).id == b


async def test_download_pick_skips_exceeded_and_goes_anonymous_when_none_left(
    db_pool: asyncpg.Pool,
) -> None:
    creds = CredentialPool(db_pool)
    a, _ = await creds.add("cookie-a")
    b, _ = await creds.add("cookie-b")
    await db_pool.execute(
        "UPDATE addicted_user_credentials SET download_usage = 9 WHERE id = $1", a
    )
    picked = await creds.pick_download()
    assert picked is not None and picked.id == b
    await creds.mark_exceeded(b)
    picked = await creds.pick_download()
    assert picked is not None and picked.id == a
    await creds.mark_exceeded(a)
    assert await creds.pick_download() is None


async def test_release_counts_one_use_and_reports_an_exceeded_credential(
    db_pool: asyncpg.Pool,
) -> None:
    flagged: list[int] = []

    async def on_exceeded(credential_id: int) -> None:
        flagged.append(credential_id)

    creds = CredentialPool(db_pool, on_exceeded=on_exceeded)
    a, _ = await creds.add("cookie-a")
    assert await creds.release(a, "query") is False
    assert await creds.release(a, "download") is False
    await creds.mark_exceeded(a)
    # Releasing an exceeded credential (querying or downloading) asks for its quota check.
    assert await creds.release(a, "query") is True
    async with creds.querying() as credential:
        assert credential.exceeded
    assert flagged == [a, a]
    assert (await _usage(db_pool))[a] == (3, 1)
    stored = await creds.get(a)
    assert stored is not None and stored.last_usage is not None


async def test_a_block_that_fails_still_counts_its_use(db_pool: asyncpg.Pool) -> None:
    creds = CredentialPool(db_pool)
    a, _ = await creds.add("cookie-a")
    with pytest.raises(RuntimeError):
        async with creds.querying():
            raise RuntimeError("upstream broke")
    assert (await _usage(db_pool))[a] == (1, 0)


async def test_hundred_concurrent_picks_and_releases_leave_exact_counts(
    db_pool: asyncpg.Pool,
) -> None:
    creds = CredentialPool(db_pool)
    for i in range(3):
        await creds.add(f"cookie-{i}")
    queried: Counter[int] = Counter()
    downloaded: Counter[int] = Counter()

    async def use(n: int) -> None:
        # Half scrape, half download, all at once: each release is an `x = x + 1` UPDATE.
        if n % 2:
            async with creds.querying() as credential:
                queried[credential.id] += 1
                await asyncio.sleep(0)
        else:
            async with creds.downloading() as maybe:
                assert maybe is not None
                downloaded[maybe.id] += 1
                await asyncio.sleep(0)

    await asyncio.gather(*(use(n) for n in range(100)))
    usage = await _usage(db_pool)
    assert sum(queried.values()) == 50 and sum(downloaded.values()) == 50
    assert usage == {i: (queried[i], downloaded[i]) for i in usage}


async def test_quota_check_clears_the_mark_only_when_quota_is_left(db_pool: asyncpg.Pool) -> None:
    creds = CredentialPool(db_pool)
    a, _ = await creds.add("cookie-a")
    await creds.mark_exceeded(a)
    assert await creds.exceeded_ids() == [a]
    assert await creds.record_quota(a, used=40, fully_used=True)
    stored = await creds.get(a)
    assert stored is not None and stored.exceeded and stored.download_usage == 40
    assert await creds.record_quota(a, used=12, fully_used=False)
    stored = await creds.get(a)
    assert stored is not None and not stored.exceeded and stored.download_usage == 12
    assert await creds.exceeded_ids() == []
    assert not await creds.record_quota(999, used=1, fully_used=False)


async def test_adding_a_known_cookie_changes_nothing(db_pool: asyncpg.Pool) -> None:
    creds = CredentialPool(db_pool)
    first = await creds.add("  cookie-a ")
    again = await creds.add("cookie-a")
    assert first == (first[0], True) and again == (first[0], False)
    assert [c.cookie for c in await creds.all_credentials()] == ["cookie-a"]
    with pytest.raises(ValueError, match="non-empty"):
        await creds.add("   ")
    assert await creds.remove(first[0]) and not await creds.remove(first[0])
