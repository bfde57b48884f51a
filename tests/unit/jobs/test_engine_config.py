"""EngineConfig.from_settings: the `[engine]` and `[queues]` sections reach the engine whole."""

from __future__ import annotations

from dataclasses import fields

from addicted_jobs.jobs.engine import EngineConfig
from addicted_jobs.settings import EngineSettings, Settings


def test_every_engine_setting_with_a_config_field_reaches_the_engine() -> None:
    settings = Settings.model_validate(
        {
            "engine": {
                "retention_days": 3.5,
                "max_interruptions": 9,
                "fallback_poll_s": 1.5,
                "flush_interval_ms": 7.0,
                "claim_batch": 42,
                "retry_delay_scale": 0.25,
                "horizon_warn_s": 12.0,
            },
            "queues": {"default": {"concurrency": 4}, "slow": {"concurrency": 2}},
        }
    )
    config = EngineConfig.from_settings(settings)
    assert (config.retention_days, config.max_interruptions, config.fallback_poll_s) == (
        3.5,
        9,
        1.5,
    )
    assert (config.claim_batch, config.retry_delay_scale, config.horizon_warn_s) == (42, 0.25, 12.0)
    assert config.flush_interval_s == 0.007  # given in milliseconds in the file
    assert config.default_concurrency == 4
    assert config.concurrency["slow"] == 2


def test_a_setting_named_like_a_config_field_is_not_forgotten() -> None:
    # A knob added to both classes under one name needs no copy line anywhere.
    shared = {f.name for f in fields(EngineConfig)} & set(EngineSettings.model_fields)
    assert {"retention_days", "max_interruptions", "claim_batch", "horizon_warn_s"} <= shared
