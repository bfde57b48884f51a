"""Configuration precedence (defaults < file < environment) and secrets from credential files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from addicted_jobs.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("ADDICTED_JOBS_") or key in (
            "CREDENTIALS_DIRECTORY",
            "STATE_DIRECTORY",
            "RUNTIME_DIRECTORY",
        ):
            monkeypatch.delenv(key)


def test_file_overrides_defaults_and_environment_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        "[log]\nlevel = 'debug'\nformat = 'journal'\n[queues.default]\nconcurrency = 4\n[refresh]\nseason_refresh = 'PT1H'\n"
    )
    settings = load_settings(config)
    assert settings.log.level == "debug" and settings.queue_concurrency("default") == 4
    # Untouched entries keep their defaults, and so do the untouched keys of a touched entry.
    assert settings.queue_concurrency("fetch-subtitles") == 10
    partial = tmp_path / "partial.toml"
    partial.write_text("[recurring.redeem_download_credentials]\nenabled = false\n")
    recurring = load_settings(partial).recurring
    assert recurring["redeem_download_credentials"].cron == "11 * * * *"
    assert not recurring["redeem_download_credentials"].enabled
    assert recurring["refresh_available_shows"].enabled
    assert settings.refresh.season_refresh == timedelta(hours=1)

    monkeypatch.setenv("ADDICTED_JOBS_LOG__LEVEL", "warning")
    monkeypatch.setenv("ADDICTED_JOBS_QUEUES__DEFAULT__CONCURRENCY", "7")
    settings = load_settings(config)
    assert settings.log.level == "warning" and settings.log.format == "journal"
    assert settings.queue_concurrency("default") == 7


def test_defaults_need_no_file_and_keep_the_original_schedule(tmp_path: Path) -> None:
    settings = load_settings(None) if not Path("/etc/addicted-jobs/config.toml").exists() else None
    if settings is None:
        pytest.skip("a system config exists on this machine")
    assert settings.database.dsn == ""
    assert settings.recurring["refresh_available_shows"].cron == "0 2 * * *"
    assert settings.recurring["check_completed_tmdb_completed"].args == {"completed": True}


def test_secrets_come_from_credential_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "tmdb.api_key").write_text("sekrit\n")
    (creds / "storage.s3.secret_access_key").write_text("s3-secret")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    settings = load_settings(None) if not Path("/etc/addicted-jobs/config.toml").exists() else None
    assert settings is not None
    assert (
        settings.tmdb.api_key == "sekrit" and settings.storage.s3.secret_access_key == "s3-secret"
    )


def test_secret_values_are_not_echoed_in_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[tmdb]\napi_key = 42\n")
    with pytest.raises(ConfigError) as err:
        load_settings(config)
    assert "tmdb.api_key" in str(err.value) and "42" not in str(err.value).replace("tmdb", "")


def test_socket_defaults_to_the_runtime_directory_then_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"[state]\ndir = '{tmp_path / 'state'}'\n")
    assert load_settings(config).socket_path == tmp_path / "state" / "control.sock"
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path / "run"))
    assert load_settings(config).socket_path == tmp_path / "run" / "control.sock"


@pytest.mark.parametrize(
    "proxy", ["proxy.local:3128", "socks5://user:pw@proxy.local:1080", "http://"]
)
def test_a_proxy_that_is_not_an_http_url_is_a_config_error(tmp_path: Path, proxy: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"[addic7ed]\nproxy = '{proxy}'\n")
    with pytest.raises(ConfigError) as err:
        load_settings(config)
    assert "addic7ed.proxy" in str(err.value)
    assert "http:// or https://" in str(err.value)
    assert "pw" not in str(err.value)  # a proxy URL may carry a password


@pytest.mark.parametrize("value", [0, 10_001])
def test_a_claim_batch_out_of_range_is_a_config_error(tmp_path: Path, value: int) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"[engine]\nclaim_batch = {value}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(config)
    assert "engine.claim_batch" in str(err.value)


def test_an_http_proxy_is_accepted(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[addic7ed]\nproxy = 'http://user:pw@proxy.local:3128'\n")
    assert load_settings(config).addic7ed.proxy == "http://user:pw@proxy.local:3128"


def test_an_empty_proxy_means_none(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[addic7ed]\nproxy = ''\n")
    assert load_settings(config).addic7ed.proxy is None


def test_the_upstream_resilience_defaults_are_the_originals() -> None:
    # The numbers are written once, in settings.py; the clients take them as arguments.
    from addicted_jobs.settings import Addic7edSettings, TmdbSettings
    from addicted_jobs.upstream.resilience import (
        BreakerSettings,
        RetrySettings,
        Timeouts,
        resilience_of,
    )

    assert resilience_of(Addic7edSettings()) == {
        "retry": RetrySettings(8, 10.0, 60.0),
        "breaker": BreakerSettings(min_calls=20, open_seconds=300.0),
        "timeouts": Timeouts(180.0, 300.0, 30.0),
    }
    assert resilience_of(TmdbSettings()) == {
        "retry": RetrySettings(3, 1.0, 30.0),
        "breaker": BreakerSettings(min_calls=10, open_seconds=120.0),
        "timeouts": Timeouts(60.0, 300.0, 30.0),
    }
    # A short attempt limit shortens the connect limit too; a long one lengthens the call's.
    assert Timeouts.for_attempt(5.0) == Timeouts(5.0, 300.0, 5.0)
    assert Timeouts.for_attempt(600.0) == Timeouts(600.0, 600.0, 30.0)
