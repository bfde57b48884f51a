"""The request-subtitles operation (spec 3.6 decision) against PostgreSQL, the engine and the
sandbox: it enqueues fetch_subtitles only when a refresh is due and says why otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from pydantic import ValidationError

from addicted_jobs.catalog.languages import UnknownLanguage
from addicted_jobs.catalog.search import ShowNotFound
from addicted_jobs.cli.output import render_request_subtitles
from addicted_jobs.control.op import Peer
from addicted_jobs.tasks.ops.catalogue import CatalogueOps, RequestSubtitlesArgs, request_subtitles
from addicted_jobs.tasks.resources import Resources
from tests.support import wait_until
from tests.support.catalogue import CatalogueEnv, catalogue_env
from tests.support.engine import EngineFactory

QUEUES = {"default": 10, "fetch-subtitles": 10, "refresh-one-show": 6}


async def request_subtitles_op(
    resources: Resources, enqueue: Any, args: dict[str, Any]
) -> dict[str, Any]:
    """The socket operation as the server runs it: the arguments' model, then the handler."""
    handler = CatalogueOps(resources, enqueue).request_subtitles
    result: dict[str, Any] = await handler(
        RequestSubtitlesArgs.model_validate(args), Peer(None, None, None)
    )
    return result


@pytest.fixture
async def env(db_pool: asyncpg.Pool) -> AsyncIterator[CatalogueEnv]:
    async with catalogue_env(db_pool, shows=20, with_tmdb=False) as env:
        yield env


async def _until_succeeded(pool: asyncpg.Pool, job_id: int) -> None:
    async def probe() -> bool:
        return (
            await pool.fetchval("SELECT state FROM jobs.jobs WHERE id = $1", job_id) == "succeeded"
        )

    await wait_until(probe, timeout=15, message=f"job {job_id} to succeed")


async def test_request_subtitles_enqueues_only_when_a_refresh_is_due(
    env: CatalogueEnv, make_engine: EngineFactory
) -> None:
    show_id = await env.add_show(5)
    engine = await make_engine(env.registry, start=False, concurrency=QUEUES)
    r = env.resources

    async def ask(season: int, episode: int, language: str) -> dict[str, Any]:
        return await request_subtitles(r, engine.enqueue, show_id, season, episode, language)

    first = await ask(2, 1, "French")
    assert first["enqueued"] and first["job_id"] and first["language"] == "fr"
    assert "episode not in the catalogue" in first["reason"]
    again = await ask(2, 4, "en")
    assert not again["enqueued"] and again["job_id"] == first["job_id"]
    assert f"already queued as job {first['job_id']}" in again["reason"]
    with pytest.raises(UnknownLanguage, match="unknown language 'Elvish'"):
        await ask(2, 1, "Elvish")
    with pytest.raises(ShowNotFound):
        await request_subtitles(r, engine.enqueue, 999, 1, 1, "en")
    await engine.start()
    await _until_succeeded(env.pool, first["job_id"])
    # The season is fresh now: an episode with English subtitles, or without, is not fetched.
    english = await ask(2, 1, "en")
    assert not english["enqueued"] and english["matching_subtitles"] >= 1
    icelandic = await ask(2, 1, "Icelandic")  # no sandbox subtitle is in Icelandic
    assert not icelandic["enqueued"] and "not due yet" in icelandic["reason"]
    await env.age_season(show_id, 2, timedelta(hours=25))
    assert (await ask(2, 1, "is"))["enqueued"]
    # A season missing from a completed show's (already refreshed) list is never fetched.
    await env.pool.execute("UPDATE tv_shows SET is_completed = true WHERE id = $1", show_id)
    missing = await ask(9, 1, "en")
    assert not missing["enqueued"] and "completed show" in missing["reason"]


async def test_the_socket_entry_validates_its_arguments(
    env: CatalogueEnv, make_engine: EngineFactory
) -> None:
    show_id = await env.add_show(5)
    engine = await make_engine(env.registry, start=False, concurrency=QUEUES)
    good = {"show_id": show_id, "season": 1, "episode": 2, "language": "pt-BR"}
    result = await request_subtitles_op(env.resources, engine.enqueue, good)
    assert result["enqueued"] and result["language"] == "pt-BR"
    assert render_request_subtitles(result).startswith(
        f"enqueued fetch_subtitles as job {result['job_id']}"
    )
    with pytest.raises(ValidationError, match="unknown language 'Elvish'"):
        await request_subtitles_op(env.resources, engine.enqueue, {**good, "language": "Elvish"})
    with pytest.raises(ValidationError, match="Extra inputs"):
        await request_subtitles_op(env.resources, engine.enqueue, {**good, "file": "x"})
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        await request_subtitles_op(env.resources, engine.enqueue, {**good, "season": -1})
    with pytest.raises(ShowNotFound, match="no show with id 999"):
        await request_subtitles_op(env.resources, engine.enqueue, {**good, "show_id": 999})
    assert await env.count("jobs.jobs") == 1
