"""Upstream bodies are bounded: a gzip bomb, an endless chunked body, a 500 MB page or file, an
implausible show list and an undecodable encoding are refused while reading, with memory that
stays near the cap (measured with tracemalloc: what Python allocated, the body buffers included).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from addicted_jobs.settings import Addic7edSettings, TmdbSettings
from addicted_jobs.upstream.addic7ed import Addic7edClient
from addicted_jobs.upstream.errors import BodyTooLarge, NothingToParse
from addicted_jobs.upstream.resilience import RetrySettings, Timeouts, resilience_of
from addicted_jobs.upstream.tmdb import TmdbClient
from tests.plugins.hostile import MIB, Hostile

PAGE_CAP = 2 * MIB
DOWNLOAD_CAP = 16 * MIB
FAST = {"retry": RetrySettings(0, 0.0, 0.0), "timeouts": Timeouts(30.0, 60.0, 5.0)}


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    async with Hostile() as server:
        yield server


@pytest.fixture
async def client(hostile: Hostile) -> AsyncIterator[Addic7edClient]:
    async with Addic7edClient(
        hostile.base_url,
        breaker=resilience_of(Addic7edSettings())["breaker"],
        max_page_bytes=PAGE_CAP,
        max_download_bytes=DOWNLOAD_CAP,
        max_shows=1000,
        **FAST,
    ) as c:
        yield c


async def _peak(call: Callable[[], Awaitable[Any]]) -> tuple[BaseException | None, int]:
    """Run `call`; what it raised and the peak bytes Python allocated meanwhile."""
    tracemalloc.start()
    try:
        try:
            await call()
            raised: BaseException | None = None
        except Exception as exc:
            raised = exc
        return raised, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def _switch(hostile: Hostile, mode: str) -> None:
    async with httpx.AsyncClient() as http:
        (await http.post(f"{hostile.base_url}_mode/{mode}")).raise_for_status()


@pytest.mark.parametrize("mode", ["bomb", "endless", "huge", "huge-chunked"])
async def test_a_hostile_page_is_refused_within_its_cap(
    hostile: Hostile, client: Addic7edClient, mode: str
) -> None:
    await _switch(hostile, mode)
    raised, peak = await _peak(lambda: client.get_shows("c=1"))
    assert isinstance(raised, BodyTooLarge), raised
    assert str(PAGE_CAP) in str(raised)
    # The cap, a copy of it at most, and the client's own buffers: not the 1 GiB / 500 MB body.
    assert peak < 3 * PAGE_CAP + 4 * MIB, f"{peak / MIB:.1f} MiB allocated for a {mode} page"
    assert hostile.served[mode] == 1, "a refused body is not retried"


@pytest.mark.parametrize("mode", ["huge", "huge-chunked", "bomb"])
async def test_a_hostile_subtitle_file_is_refused_at_the_blob_cap(
    hostile: Hostile, client: Addic7edClient, mode: str
) -> None:
    await _switch(hostile, mode)
    raised, peak = await _peak(lambda: client.download(None, "/updated/1/2/0"))
    assert isinstance(raised, BodyTooLarge), raised
    assert str(DOWNLOAD_CAP) in str(raised)
    assert peak < 2 * DOWNLOAD_CAP + 4 * MIB, f"{peak / MIB:.1f} MiB allocated"


async def test_an_implausible_show_list_is_a_parse_error(
    hostile: Hostile, client: Addic7edClient
) -> None:
    hostile.many_shows = 5000  # a valid page, under the byte cap
    await _switch(hostile, "many-shows")
    with pytest.raises(NothingToParse, match="more than the 1000 of"):
        await client.get_shows("c=1")
    await _switch(hostile, "ok")
    assert [s.external_id for s in await client.get_shows("c=1")] == [1, 2, 3]


async def test_an_encoding_we_do_not_decode_is_refused(
    hostile: Hostile, client: Addic7edClient
) -> None:
    await _switch(hostile, "brotli")
    with pytest.raises(BodyTooLarge, match="gzip, deflate or identity"):
        await client.get_shows("c=1")


async def test_a_hostile_tmdb_answer_is_refused_as_unreadable(hostile: Hostile) -> None:
    await _switch(hostile, "bomb")
    async with TmdbClient(
        hostile.base_url,
        "k",
        max_page_bytes=PAGE_CAP,
        breaker=resilience_of(TmdbSettings())["breaker"],
        **FAST,
    ) as tmdb:
        raised, peak = await _peak(lambda: tmdb.get_show(1))
    assert raised is None  # an unreadable answer is None and a warning, as in the original
    assert peak < 3 * PAGE_CAP + 4 * MIB
