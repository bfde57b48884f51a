"""Prometheus metrics (issue 17): the original's upstream_subtitle_requests from real downloads
against the sandbox, upstream attempts by result, job runs and durations from a real engine,
and the table counts a refresh reads from PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from addicted_jobs.jobs import JobRequest
from addicted_jobs.jobs.spec import default_registry
from addicted_jobs.metrics import Metrics
from addicted_jobs.sandbox import Sandbox
from addicted_jobs.settings import Addic7edSettings
from addicted_jobs.upstream.addic7ed import Addic7edClient
from addicted_jobs.upstream.errors import DownloadLimitExceeded, SubtitleFileDeleted
from addicted_jobs.upstream.resilience import BreakerSettings, RetrySettings, resilience_of
from tests.support import wait_until
from tests.support.engine import EngineFactory
from tests.support.sandbox import find_href


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, parsed back from the text format: (name, labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(metrics: Metrics, metric: str, **labels: str) -> float:
    return samples(metrics).get((metric, frozenset(labels.items())), 0.0)


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    m = Metrics()
    m.subscribe()
    yield m
    m.unsubscribe()


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(shows=20, seed=3, quota_per_cookie=1, anonymous_quota=0) as box:
        yield box


async def test_subtitle_downloads_count_as_the_original_did(
    sandbox: Sandbox, metrics: Metrics
) -> None:
    client = Addic7edClient(
        sandbox.base_url,
        retry=RetrySettings(max_retries=0, base_delay=0.001, max_delay=0.001),
        breaker=BreakerSettings(min_calls=1_000_000, open_seconds=300.0),
        timeouts=resilience_of(Addic7edSettings())["timeouts"],
        rng=random.Random(0),
    )
    try:
        href = find_href(sandbox.catalogue, deleted=False)
        assert await client.download("cred=1", href)
        with pytest.raises(DownloadLimitExceeded):
            await client.download("cred=1", href)
        with pytest.raises(SubtitleFileDeleted):
            await client.download("cred=2", find_href(sandbox.catalogue, deleted=True))
    finally:
        await client.aclose()
    for result in ("Downloaded", "DownloadLimitReached", "Deleted"):
        assert value(metrics, "upstream_subtitle_requests_total", result=result) == 1, result
    assert (
        value(metrics, "addicted_jobs_upstream_requests_total", upstream="addic7ed", result="2xx")
        == 1
    )
    assert (
        value(metrics, "addicted_jobs_upstream_requests_total", upstream="addic7ed", result="3xx")
        == 2
    )


async def test_job_runs_durations_and_table_counts(
    make_engine: EngineFactory, metrics: Metrics
) -> None:
    engine = await make_engine(default_registry())
    engine.on_finished = metrics.job_finished
    await engine.enqueue_many(
        [JobRequest("noop", {"sleep_ms": 30})] * 3
        + [JobRequest("noop", {"fail": True}), JobRequest("noop", {}, delay=600)]
    )

    async def finished() -> bool:
        done = await engine.pool.fetchval(
            "SELECT count(*) FROM jobs.jobs WHERE state IN ('succeeded', 'failed')"
        )
        return bool(done == 4)

    await wait_until(finished, message="four noops finished")
    await wait_until(
        lambda: value(metrics, "addicted_jobs_finished_total", name="noop", outcome="failed") == 1,
        message="the failed run is counted",
    )
    assert value(metrics, "addicted_jobs_finished_total", name="noop", outcome="succeeded") == 3
    assert value(metrics, "addicted_jobs_job_duration_seconds_count", name="noop") == 4
    # 3 runs of 30 ms are in the 0.1 s bucket, not in the 0.025 s one.
    assert value(metrics, "addicted_jobs_job_duration_seconds_bucket", name="noop", le="0.1") == 4
    assert value(metrics, "addicted_jobs_job_duration_seconds_bucket", name="noop", le="0.025") == 1

    await engine.pool.execute(
        "INSERT INTO addicted_user_credentials (cookie, download_usage, download_exceeded_date) "
        "VALUES ('a=1', 40, now()), ('b=2', 3, NULL)"
    )
    await metrics.refresh(engine.pool, lambda: {"addic7ed": "open", "tmdb": "closed"})
    assert value(metrics, "addicted_jobs_jobs", queue="default", state="succeeded") == 3
    assert value(metrics, "addicted_jobs_jobs", queue="default", state="scheduled") == 1
    assert (
        value(metrics, "addicted_jobs_upstream_circuit_state", upstream="addic7ed", state="open")
        == 1
    )
    assert (
        value(metrics, "addicted_jobs_upstream_circuit_state", upstream="addic7ed", state="closed")
        == 0
    )
    assert value(metrics, "addicted_jobs_credentials_with_quota") == 1
    assert value(metrics, "addicted_jobs_database_up") == 1
