"""The daemon, as a subprocess, against the sandbox serving the markup the real Addic7ed sends
(season options without a value, 11-cell rows in a nested table, no charset, stray bytes, BOM and
Latin-1 files): it builds the whole catalogue and stores the completed files byte for byte.
"""

from __future__ import annotations

import base64
import collections
from typing import Any

import asyncpg
import pytest

from addicted_jobs.sandbox import Sandbox
from addicted_jobs.sandbox.data import srt_charset
from tests.support import reliability as env

pytestmark = pytest.mark.acceptance
SHOWS = 30  # past the 17 hand-written names: generated, spaced and non-ASCII ones too
DOWNLOADS = 60
QUOTA = 100_000  # the daily limit is not under test here


@pytest.mark.timeout(240)
async def test_the_daemon_reads_real_markup_into_the_full_catalogue(
    daemon_factory: Any, db_dsn: str, db_pool: asyncpg.Pool
) -> None:
    async with Sandbox(shows=SHOWS, quota_per_cookie=QUOTA) as box:
        daemon = env.launch(daemon_factory, "real-markup", env.config(db_dsn, box))
        await daemon.start()
        await daemon.add_credential()
        await daemon.cli("enqueue", "refresh_available_shows")
        await env.settled(db_pool, timeout=90, message="the show list")
        linked = await env.addic7ed_ids(db_pool)
        assert sorted(linked.values()) == list(box.catalogue.show_ids())
        # Names as a browser reads them: spaces stripped and collapsed, non-ASCII kept.
        names = {r["id"]: r["name"] for r in await db_pool.fetch("SELECT id, name FROM tv_shows")}
        assert {i: names[i] for i in linked} == {
            i: box.catalogue.show_name(a) for i, a in linked.items()
        }
        assert any(not n.isascii() for n in names.values())

        await daemon.enqueue("refresh_single_show", ({"show_id": i} for i in linked))
        await env.settled(db_pool, timeout=150, message="every show refreshed")
        assert await env.bad_jobs(db_pool) == []
        # Every season (read from options with no value attribute), episode and subtitle.
        expected = {i: env.expected_show(box, a) for i, a in linked.items()}
        assert await env.show_counts(db_pool, linked) == expected
        assert sum(seasons for seasons, _, _ in expected.values()) > SHOWS

        # Completed files in each of the three encodings, stored as served.
        wanted = await _mixed_encodings(db_pool, box, DOWNLOADS)
        await daemon.enqueue("download_subtitle", ({"subtitle_id": i} for i in wanted))
        await env.settled(db_pool, timeout=90, message="the downloads and stores")
        assert await env.bad_jobs(db_pool) == []
        assert sorted(await env.stored_paths(db_pool)) == sorted(wanted)
        stored = {i: await _read_back(daemon, i) for i in wanted}
        served = await env.upstream_files(box, db_pool, wanted)
        assert stored == served
        assert any(f.startswith(b"\xef\xbb\xbf") for f in stored.values())
        assert await daemon.stop() == 0


async def _mixed_encodings(pool: asyncpg.Pool, box: Sandbox, limit: int) -> list[int]:
    """Downloadable subtitles, a third of them in each encoding the sandbox serves."""
    by_charset: dict[str, list[int]] = collections.defaultdict(list)
    rows = await pool.fetch("SELECT id, download_uri FROM subtitles WHERE completed ORDER BY id")
    for row in rows:
        found = box.catalogue.subtitle_by_href(row["download_uri"])
        if found is not None and not found[1].deleted:
            by_charset[srt_charset(box.seed, found[1])].append(row["id"])
    assert by_charset.keys() == {"utf-8", "utf-8-sig", "latin-1"}
    return [i for ids in by_charset.values() for i in ids[: limit // 3]]


async def _read_back(daemon: env.Driver, subtitle_id: int) -> bytes:
    result = await daemon.call("storage-get", {"subtitle_id": subtitle_id})
    return base64.b64decode(result["content"])
