"""Download-credential jobs against the sandbox: an exceeded credential is cleared only once its
quota page shows room, checks are deduplicated and capped at 3 at once, and the operator commands.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from addicted_jobs.catalog.credentials import CredentialPool
from addicted_jobs.cli.output import render_credentials
from addicted_jobs.jobs import Registry
from addicted_jobs.jobs.engine import Engine
from addicted_jobs.sandbox import FaultConfig, Sandbox
from addicted_jobs.tasks.credentials import (
    RESET,
    credential_check_hook,
    register_credential_jobs,
)
from addicted_jobs.tasks.ops.credentials import (
    CredentialNotFound,
    credentials_add,
    credentials_list,
    credentials_remove,
)
from addicted_jobs.upstream.addic7ed import Addic7edClient
from addicted_jobs.upstream.errors import DownloadLimitExceeded
from addicted_jobs.upstream.models import DownloadUsage
from tests.support import wait_until
from tests.support.catalogue import ADDIC7ED_FAST
from tests.support.engine import EngineFactory

QUOTA = 3


class MeteredClient:
    """The real client, counting quota-page reads in flight to measure peak concurrency."""

    def __init__(self, client: Addic7edClient) -> None:
        self.client = client
        self.active = 0
        self.peak = 0

    async def get_download_usage(self, cookie: str) -> DownloadUsage:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            return await self.client.get_download_usage(cookie)
        finally:
            self.active -= 1


@dataclass
class Resources:
    credentials: CredentialPool
    addic7ed: MeteredClient


@dataclass
class Rig:
    sandbox: Sandbox
    client: Addic7edClient
    addic7ed: MeteredClient
    credentials: CredentialPool
    engine: Engine
    pool: asyncpg.Pool

    async def reset_jobs(self, state: str) -> int:
        return int(
            await self.pool.fetchval(
                "SELECT count(*) FROM jobs.jobs WHERE name = $1 AND state = $2", RESET, state
            )
        )

    async def credential(self, credential_id: int) -> asyncpg.Record:
        row = await self.pool.fetchrow(
            "SELECT * FROM addicted_user_credentials WHERE id = $1", credential_id
        )
        assert row is not None
        return row


@pytest.fixture
async def rig(db_pool: asyncpg.Pool, make_engine: EngineFactory) -> AsyncIterator[Rig]:
    async with Sandbox(shows=20, quota_per_cookie=QUOTA) as sandbox:
        async with Addic7edClient(sandbox.addic7ed_url, **ADDIC7ED_FAST) as client:
            resources = Resources(CredentialPool(db_pool), MeteredClient(client))
            registry = Registry()
            register_credential_jobs(registry, resources)
            # The queue could run 10 at once: only the job's own cap may hold it to 3.
            engine = await make_engine(
                registry, start=False, concurrency={"default": 4, "download-creds-checker": 10}
            )
            resources.credentials.on_exceeded = credential_check_hook(engine.enqueue)
            yield Rig(sandbox, client, resources.addic7ed, resources.credentials, engine, db_pool)


def a_subtitle_href(sandbox: Sandbox) -> str:
    catalogue = sandbox.catalogue
    for show in catalogue.show_ids():
        for season in catalogue.seasons(show):
            for episode in catalogue.episodes(show, season) or ():
                for subtitle in episode.subtitles:
                    if not subtitle.deleted:
                        return subtitle.href
    raise AssertionError("the sandbox has no downloadable subtitle")


async def download_until_exceeded(rig: Rig, href: str) -> int:
    """Download with the pool's credential until Addic7ed says the quota is spent."""
    for _ in range(QUOTA + 1):
        async with rig.credentials.downloading() as credential:
            assert credential is not None
            try:
                await rig.client.download(credential.cookie, href)
            except DownloadLimitExceeded:
                await rig.credentials.mark_exceeded(credential.id)
                return credential.id
    raise AssertionError("the quota never ran out")


async def test_an_exceeded_credential_is_reset_only_once_its_quota_page_shows_room(
    rig: Rig,
) -> None:
    credential_id, _ = await rig.credentials.add("session=alpha")
    await download_until_exceeded(rig, a_subtitle_href(rig.sandbox))
    # The release after the exceeded download queued a check; more releases do not add one.
    async with rig.credentials.querying():
        pass
    assert await rig.reset_jobs("ready") == 1
    assert (await rig.credential(credential_id))["download_exceeded_date"] is not None

    await rig.engine.recover()
    await rig.engine.start()
    await wait_until(lambda: rig.reset_jobs("succeeded"), message="the first quota check")
    row = await rig.credential(credential_id)
    assert row["download_exceeded_date"] is not None, f"{QUOTA} of {QUOTA}: no room yet"
    assert row["download_usage"] == QUOTA

    # The hourly redeemer asks again while the page still shows no room: nothing changes.
    await rig.engine.enqueue("redeem_download_credentials")
    await wait_until(lambda: _succeeded_at_least(rig, 2), message="the second check")
    assert (await rig.credential(credential_id))["download_exceeded_date"] is not None

    rig.sandbox.set_downloads_used("session=alpha", QUOTA - 1)  # room for one more
    await rig.engine.enqueue("redeem_download_credentials")
    await wait_until(lambda: _succeeded_at_least(rig, 3), message="the third check")
    row = await rig.credential(credential_id)
    assert row["download_exceeded_date"] is None and row["download_usage"] == QUOTA - 1
    async with rig.credentials.downloading() as credential:
        assert credential is not None and credential.id == credential_id


async def _succeeded_at_least(rig: Rig, n: int) -> bool:
    return await rig.reset_jobs("succeeded") >= n


async def test_at_most_three_checks_run_at_once(rig: Rig) -> None:
    ids = [(await rig.credentials.add(f"session=user{i}"))[0] for i in range(12)]
    for credential_id in ids:
        await rig.credentials.mark_exceeded(credential_id)
    rig.sandbox.faults = FaultConfig(latency=0.15, paths=("/panel.php",))
    await rig.engine.recover()
    await rig.engine.start()
    await rig.engine.enqueue("redeem_download_credentials")
    await wait_until(lambda: _succeeded_at_least(rig, 12), timeout=30, message="12 checks")
    # Measured where the work happens (quota-page reads in flight), not from job timestamps:
    # a finish is written a moment after its slot is already free again.
    assert rig.addic7ed.peak == 3
    assert not await rig.pool.fetchval(
        "SELECT count(*) FROM addicted_user_credentials WHERE download_exceeded_date IS NOT NULL"
    )


async def test_an_unreadable_quota_page_is_retried_and_changes_nothing(rig: Rig) -> None:
    credential_id, _ = await rig.credentials.add("session=beta")
    await rig.credentials.mark_exceeded(credential_id)
    rig.sandbox.faults = FaultConfig(error_rate=1.0, error_status=200, paths=("/panel.php",))
    await rig.engine.recover()
    await rig.engine.start()
    job = await rig.engine.enqueue(RESET, {"credential_id": credential_id})
    await wait_until(lambda: rig.reset_jobs("scheduled"), message="a scheduled retry")
    row = await rig.pool.fetchrow("SELECT * FROM jobs.jobs WHERE id = $1", job.id)
    assert row["attempt"] == 1 and row["max_attempts"] == 11
    assert "NothingToParse" in row["last_error"]
    assert (await rig.credential(credential_id))["download_exceeded_date"] is not None


async def test_a_check_of_a_removed_credential_ends_quietly(rig: Rig) -> None:
    await rig.engine.recover()
    await rig.engine.start()
    await rig.engine.enqueue(RESET, {"credential_id": 999})
    await wait_until(lambda: rig.reset_jobs("succeeded"), message="the check to succeed")


async def test_a_failed_enqueue_does_not_break_the_release() -> None:
    async def broken(*_args: object, **_kw: object) -> None:
        raise ConnectionError("database away")

    await credential_check_hook(broken)(7)


async def test_credential_commands_never_show_a_whole_cookie(db_pool: asyncpg.Pool) -> None:
    cookie = "wikisubtitlesuser=123456; wikisubtitlespass=abcdef0123456789"
    added = await credentials_add(db_pool, f"  {cookie}\n")
    assert added["created"] is True and added["cookie"] == f"wikisu…({len(cookie)} chars)"
    again = await credentials_add(db_pool, cookie)
    assert again == {**added, "created": False}
    for bad in ("", "   ", "a\r\nX-Evil: 1", "x" * 9000):
        with pytest.raises(ValueError):
            await credentials_add(db_pool, bad)

    await CredentialPool(db_pool).mark_exceeded(added["id"])
    listed = await credentials_list(db_pool)
    [entry] = listed["credentials"]
    assert entry["id"] == added["id"] and entry["exceeded_since"] is not None
    assert {"usage", "download_usage", "last_used"} <= set(entry)
    text = render_credentials(listed)
    assert cookie not in json.dumps(listed) and cookie not in text
    assert "123456" not in text and "wikisu…" in text

    assert await credentials_remove(db_pool, added["id"]) == {"id": added["id"], "removed": True}
    with pytest.raises(CredentialNotFound):
        await credentials_remove(db_pool, added["id"])
    assert (await credentials_list(db_pool))["credentials"] == []
    assert "no credentials" in render_credentials(await credentials_list(db_pool))
