"""config.example.toml shows the defaults: its queues and upstream timings are the ones the daemon
uses when the file says nothing, so the example never advertises a number the code does not use."""

from __future__ import annotations

import tomllib
from pathlib import Path

from addicted_jobs.settings import DEFAULT_CONCURRENCY, Addic7edSettings, TmdbSettings

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
RESILIENCE = (
    "retries",
    "retry_base_s",
    "retry_max_s",
    "breaker_min_calls",
    "breaker_open_s",
    "attempt_timeout_s",
)


def test_the_example_queues_are_the_default_queues() -> None:
    example = tomllib.loads(EXAMPLE.read_text())
    listed = {name: entry["concurrency"] for name, entry in example["queues"].items()}
    assert listed == dict(DEFAULT_CONCURRENCY)


def test_the_example_upstream_timings_are_the_defaults() -> None:
    example = tomllib.loads(EXAMPLE.read_text())
    for section, defaults in (("addic7ed", Addic7edSettings()), ("tmdb", TmdbSettings())):
        for key in RESILIENCE:
            assert example[section][key] == getattr(defaults, key), f"[{section}] {key}"
