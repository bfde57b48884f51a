"""Configuration: a TOML file, then ADDICTED_JOBS_<SECTION>__<KEY> environment overrides.

Secrets may also come from files in $CREDENTIALS_DIRECTORY (systemd LoadCredential=), named by
their dotted key, e.g. `tmdb.api_key`. Every error names the source, the key, the value and what
was expected, and the process exits with EX_CONFIG (78).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from addicted_jobs.paths import ENV_PREFIX, config_path, default_state_dir, socket_path

SECRET_KEYS = (
    "database.dsn",
    "tmdb.api_key",
    "addic7ed.proxy",  # may carry a user and password
    "storage.s3.access_key_id",
    "storage.s3.secret_access_key",
)


class ConfigError(Exception):
    """A configuration that cannot be used; the message is meant for the operator."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StateSettings(Section):
    dir: Path = Field(default_factory=lambda: Path(default_state_dir()))


# Connections of the derived pool kept for socket requests beyond one per running job.
POOL_REQUEST_SHARE = 4


class DatabaseSettings(Section):
    dsn: str = ""
    pool_min: int = Field(default=2, ge=1)
    # None: derived from the queues' concurrency (Settings.pool_size).
    pool_max: int | None = Field(default=None, ge=2)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    # Longest wait of a socket request or a job for a pooled connection, then `unavailable`.
    acquire_timeout_s: float = Field(default=5.0, gt=0)

    @field_validator("dsn")
    @classmethod
    def _url_form(cls, value: str) -> str:
        # asyncpg reads URL DSNs only; a keyword-form one (host=... password=...) used to reach
        # it and crash the start with a traceback. The message never repeats the value.
        value = value.strip()
        if not value:
            return value
        expected = "expected a URL DSN, postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
        parts = urlsplit(value)
        if parts.scheme not in ("postgres", "postgresql"):
            raise ValueError(
                f"{expected} (keyword-form DSNs like 'host=... password=...' are not supported)"
            )
        # Several hosts (h1:5432,h2:5432, for failover with target_session_attrs=read-write,
        # issue 19): each port is checked; urlsplit reads one host only.
        hosts = parts.netloc.rpartition("@")[2].split(",")
        for host in hosts:
            try:
                urlsplit(f"//{host}").port  # noqa: B018 - urlsplit checks the port only when asked
            except ValueError:
                raise ValueError(f"{expected}: the port is not a number from 0 to 65535") from None
        return value


class ControlSettings(Section):
    socket: Path | None = (
        None  # default: $RUNTIME_DIRECTORY/control.sock, else <state dir>/control.sock
    )
    max_request_bytes: int = Field(default=16 * 1024 * 1024 + 4096, ge=1024)
    idle_timeout_s: float = Field(default=30.0, gt=0)
    request_timeout_s: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=256, ge=1)
    # Unfinished request bytes held across all connections, and the largest reply line.
    max_buffered_bytes: int = Field(default=64 * 1024 * 1024, ge=64 * 1024)
    max_reply_bytes: int = Field(default=16 * 1024 * 1024, ge=64 * 1024)


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "console", "json", "journal"] = "auto"


class ShutdownSettings(Section):
    grace_seconds: float = Field(default=30.0, ge=0)


class QueueSettings(Section):
    concurrency: int = Field(default=10, ge=1, le=1000)


class EngineSettings(Section):
    retention_days: float = Field(default=7.0, gt=0)
    max_interruptions: int = Field(default=5, ge=1)
    fallback_poll_s: float = Field(default=5.0, gt=0)
    flush_interval_ms: float = Field(default=2.0, ge=0)
    # A claim of 1,000 takes ~17 ms; the cap keeps one claim's rows (held in memory, written back
    # on shutdown) and its time far inside the engine's statement deadline (pools.py).
    claim_batch: int = Field(default=1000, ge=1, le=10_000)
    # Multiplies every retry delay; below 1 only for drills and tests (fault storms in minutes).
    retry_delay_scale: float = Field(default=1.0, gt=0, le=10)
    # An open transaction older than this (seconds) holding back vacuum is logged and shown.
    horizon_warn_s: float = Field(default=300.0, gt=0)
    # Modules whose `register(registry)` adds job types: diagnostics, site-specific jobs, tests.
    job_modules: list[str] = Field(default_factory=list)


class RecurringSettings(Section):
    cron: str
    enabled: bool = True
    args: dict[str, Any] = Field(default_factory=dict)
    job: str | None = None


class SchedulerSettings(Section):
    misfire_grace_s: float = Field(default=21_600.0, ge=0)


_SHORT_DURATION = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
DURATION_FORMS = "an ISO 8601 duration like PT12H or P90D, or a short one like 12h, 30m, 1d12h, 90s"


def parse_duration(value: Any) -> Any:
    """'12h', '30m', '1d12h', '1.5h' (w, d, h, m, s units) to a timedelta; anything else is left
    for pydantic (ISO 8601 'PT12H', a number of seconds). A string that is neither raises
    ValueError naming both accepted forms."""
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    if text and _SHORT_DURATION.sub("", text) == "":
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _SHORT_DURATION.findall(text))
        try:
            return timedelta(seconds=seconds)
        except OverflowError:
            # '99999999999d' is past timedelta's range: a ValueError, so a config key or a CLI
            # argument gets its one-line error instead of a traceback.
            raise ValueError("too long: at most 999999999 days") from None
    try:
        return _TIMEDELTA.validate_python(value)
    except ValidationError:
        raise ValueError(f"expected {DURATION_FORMS}") from None


_TIMEDELTA: TypeAdapter[timedelta] = TypeAdapter(timedelta)
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class RefreshSettings(Section):
    season_refresh: Duration = timedelta(hours=12)
    episode_refresh_latest_season: Duration = timedelta(hours=3)
    episode_refresh_default: Duration = timedelta(hours=24)
    completed_show_refresh: Duration = timedelta(days=90)


class UpstreamResilience(Section):
    """Retry and circuit-breaker timings of one upstream (defaults: the original's)."""

    retries: int = Field(default=8, ge=0, le=50)
    retry_base_s: float = Field(default=10.0, ge=0)
    retry_max_s: float = Field(default=60.0, ge=0)
    breaker_min_calls: int = Field(default=20, ge=1)
    breaker_open_s: float = Field(default=300.0, gt=0)
    attempt_timeout_s: float = Field(default=180.0, gt=0)


class Addic7edSettings(UpstreamResilience):
    base_url: str = "https://www.addic7ed.com"
    proxy: str | None = None
    requests_per_second: float = Field(default=2.0, ge=0)
    # Bounds on what one answer may cost: a page's decoded bytes (counted while reading; real
    # pages are under 1 MiB), and the shows a list may hold (the real one has ~5,000).
    max_page_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)
    max_shows: int = Field(default=50_000, ge=1)

    @field_validator("proxy")
    @classmethod
    def _http_proxy(cls, value: str | None) -> str | None:
        # Checked here because the HTTP client is only built at the first request: a typo must
        # stop the start (78), not fail every Addic7ed job later.
        if not value:
            return None  # an empty string, as in the example file, means no proxy
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// proxy URL with a host")
        return value


class TmdbSettings(UpstreamResilience):
    base_url: str = "https://api.themoviedb.org/3/"
    api_key: str = ""
    retries: int = Field(default=3, ge=0, le=50)
    retry_base_s: float = Field(default=1.0, ge=0)
    retry_max_s: float = Field(default=30.0, ge=0)
    breaker_min_calls: int = Field(default=10, ge=1)
    breaker_open_s: float = Field(default=120.0, gt=0)
    attempt_timeout_s: float = Field(default=60.0, gt=0)
    max_page_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)  # decoded, per answer


class LocalStorageSettings(Section):
    dir: Path | None = None


class S3Settings(Section):
    endpoint_url: str = ""
    bucket: str = ""
    region: str = "auto"
    access_key_id: str = ""
    secret_access_key: str = ""


class StorageSettings(Section):
    backend: Literal["local", "s3"] = "local"
    local: LocalStorageSettings = LocalStorageSettings()
    s3: S3Settings = S3Settings()
    original_dictionary: Path | None = None
    # `storage train-dictionary --from-dir` reads here for any socket user; elsewhere only the
    # files the requesting user could read itself.
    training_dir: Path | None = None
    max_object_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    train_after: int = Field(
        default=1000, ge=0
    )  # stored subtitles before a dictionary is trained; 0: never
    # zstd level new objects are written at; old objects read back whatever their level. 19 is
    # the most readers accept without a large window (bench/storage_levels.py chose the default).
    zstd_level: int = Field(default=19, ge=1, le=19)


class ClusterSettings(Section):
    """Several daemons on one database (issue 19; README "Running several daemons")."""

    enabled: bool = False
    # Silence (seconds, by the database's clock) after which a node is declared dead and its
    # running jobs go back to ready.
    node_timeout_s: float = Field(default=30.0, ge=3)
    # How often a node proves itself alive and looks for dead peers.
    heartbeat_s: float = Field(default=3.0, gt=0)
    # The Addic7ed requests-per-second limit is shared among live nodes; true gives every node
    # the whole limit (each host has its own IP address and so its own upstream budget).
    per_node_rate_limit: bool = False
    # How long a node waits for another running the one-time migrations before giving up.
    migrations_wait_s: float = Field(default=3600.0, gt=0)

    @model_validator(mode="after")
    def _beat_fits_timeout(self) -> ClusterSettings:
        if self.heartbeat_s * 3 > self.node_timeout_s:
            raise ValueError(
                f"heartbeat_s ({self.heartbeat_s:g}) must be at most a third of node_timeout_s "
                f"({self.node_timeout_s:g}), so one late heartbeat does not make a node dead"
            )
        return self


class MetricsSettings(Section):
    """Prometheus metrics: off unless `listen` or `textfile` is set."""

    listen: str = ""  # "127.0.0.1:9464": an HTTP listener on a loopback address
    textfile: Path | None = None  # node-exporter textfile collector file, rewritten atomically
    refresh_s: float = Field(default=15.0, ge=1, le=3600)  # how often table counts are re-read

    @field_validator("listen")
    @classmethod
    def _loopback(cls, value: str) -> str:
        if not value:
            return value
        host, sep, port = value.rpartition(":")
        host = host.strip("[]")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:9464")
        import ipaddress

        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(
                "metrics are served on a loopback address only (127.0.0.1, ::1); "
                "put a reverse proxy or the textfile collector in front to expose them"
            )
        return value


# The subtitle jobs' queues. Their JobSpecs name them through these constants: a misspelt name is
# then an import error, not a queue of its own running at the default concurrency.
FETCH_SUBTITLES_QUEUE = "fetch-subtitles"
REFRESH_ONE_SHOW_QUEUE = "refresh-one-show"
STORE_SUBTITLE_QUEUE = "store-subtitle"
CREDENTIAL_CHECK_QUEUE = "download-creds-checker"
# [queues.<name>] concurrency defaults (config.example.toml lists the same).
DEFAULT_CONCURRENCY: Mapping[str, int] = MappingProxyType(
    {
        "default": 10,
        FETCH_SUBTITLES_QUEUE: 10,
        REFRESH_ONE_SHOW_QUEUE: 6,
        STORE_SUBTITLE_QUEUE: 5,
        CREDENTIAL_CHECK_QUEUE: 3,
    }
)


def _default_queues() -> dict[str, QueueSettings]:
    return {name: QueueSettings(concurrency=n) for name, n in DEFAULT_CONCURRENCY.items()}


DEFAULT_QUEUES = frozenset(_default_queues())


def _default_recurring() -> dict[str, RecurringSettings]:
    # The original schedule (UTC), one entry per Hangfire recurring id.
    return {
        "refresh_available_shows": RecurringSettings(cron="0 2 * * *"),
        "check_completed_tmdb_not_completed": RecurringSettings(
            cron="50 2 * * *", job="check_completed_tmdb", args={"completed": False}
        ),
        "check_completed_tmdb_completed": RecurringSettings(
            cron="10 2 * * */2", job="check_completed_tmdb", args={"completed": True}
        ),
        "redeem_download_credentials": RecurringSettings(cron="11 * * * *"),
    }


def _hyphenated(value: Any, known: Mapping[str, Section]) -> Any:
    """An environment variable cannot hold '-': ADDICTED_JOBS_QUEUES__FETCH_SUBTITLES__CONCURRENCY
    arrives as queue 'fetch_subtitles', which means 'fetch-subtitles' when that is a known queue
    and 'fetch_subtitles' is not. Such aliases are applied after the hyphenated entries, so the
    environment still wins over the file."""
    if not isinstance(value, dict):
        return value
    plain = {k: v for k, v in value.items() if k in known or k.replace("_", "-") not in known}
    aliases = {k: v for k, v in value.items() if k not in plain}
    for name, conf in aliases.items():
        target = name.replace("_", "-")
        before = plain.get(target)
        plain[target] = (
            {**before, **conf} if isinstance(before, dict) and isinstance(conf, dict) else conf
        )
    return plain


def _over_defaults(value: Any, defaults: Mapping[str, Section]) -> Any:
    """A file that tunes one entry keeps the defaults of the others, and of its own other keys."""
    if not isinstance(value, dict):
        return value  # pydantic reports the wrong type
    merged: dict[str, Any] = {name: entry.model_dump() for name, entry in defaults.items()}
    for name, conf in value.items():
        merged[name] = {**merged.get(name, {}), **conf} if isinstance(conf, dict) else conf
    return merged


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        # `Environment=ADDICTED_JOBS_X=` in a unit drop-in clears a value, as in systemd itself;
        # paths.environment_value (the command line's socket rules) reads them the same way.
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
    )

    state: StateSettings = Field(default_factory=StateSettings)  # reads $STATE_DIRECTORY now
    database: DatabaseSettings = DatabaseSettings()
    control: ControlSettings = ControlSettings()
    log: LogSettings = LogSettings()
    shutdown: ShutdownSettings = ShutdownSettings()
    engine: EngineSettings = EngineSettings()
    queues: dict[str, QueueSettings] = Field(default_factory=_default_queues)
    recurring: dict[str, RecurringSettings] = Field(default_factory=_default_recurring)
    scheduler: SchedulerSettings = SchedulerSettings()
    refresh: RefreshSettings = RefreshSettings()
    addic7ed: Addic7edSettings = Addic7edSettings()
    tmdb: TmdbSettings = TmdbSettings()
    storage: StorageSettings = StorageSettings()
    metrics: MetricsSettings = MetricsSettings()
    cluster: ClusterSettings = ClusterSettings()

    @field_validator("queues", mode="before")
    @classmethod
    def _merge_queues(cls, value: Any) -> Any:
        return _over_defaults(_hyphenated(value, _default_queues()), _default_queues())

    @field_validator("recurring", mode="before")
    @classmethod
    def _merge_recurring(cls, value: Any) -> Any:
        return _over_defaults(value, _default_recurring())

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init carries the TOML file and credentials (merged by load_settings); env wins over both.
        return (env_settings, init_settings)

    def queue_concurrency(self, queue: str) -> int:
        conf = self.queues.get(queue)
        return conf.concurrency if conf else self.queues["default"].concurrency

    def concurrency_total(self) -> int:
        """The most jobs that can run at once: the configured queues' concurrency, summed."""
        return sum(self.queue_concurrency(q) for q in set(self.queues) | {"default"})

    def pool_size(self) -> int:
        """The client pool's size: `[database] pool_max`, or by default one connection per job
        that can run at once plus POOL_REQUEST_SHARE for socket requests (38 with the default
        queues), so jobs that each hold a connection cannot leave requests waiting (issue 14).
        The built-in jobs hold one only for a statement or a short transaction, so the pool
        rarely grows past a few; connections open on demand and close after 5 idle minutes,
        so the ceiling costs nothing until it is used. Add 5 for the engine's own, LISTEN and
        the instance lock to get what PostgreSQL must allow (max_connections)."""
        if self.database.pool_max is not None:
            return self.database.pool_max
        return self.concurrency_total() + POOL_REQUEST_SHARE

    @property
    def socket_path(self) -> Path:
        """The control socket (paths.socket_path: the rules the command line also follows)."""
        return Path(socket_path(self.control.socket, self.state.dir))

    @property
    def local_storage_dir(self) -> Path:
        return self.storage.local.dir or self.state.dir / "subtitles"


def check_queue_names(settings: Settings, known: set[str]) -> None:
    """Every [queues.<name>] must be a queue some registered job runs on: a typo or an
    environment variable's underscore spelling would otherwise configure a queue nothing uses,
    silently. Raises ConfigError naming the key and the known queues."""
    unknown = sorted(set(settings.queues) - known)
    if unknown:
        name = unknown[0]
        env = ENV_PREFIX + "QUEUES__" + name.upper() + "__CONCURRENCY"
        source = f"environment variable {env}: " if env in os.environ else ""
        raise ConfigError(
            f"{source}key 'queues.{name}': no such queue; known queues: "
            f"{', '.join(sorted(known))} (in an environment variable write '-' as '_', e.g. "
            "ADDICTED_JOBS_QUEUES__FETCH_SUBTITLES__CONCURRENCY for fetch-subtitles)"
        )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from exc
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text at byte {exc.start}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def _read_credentials(data: dict[str, Any]) -> list[str]:
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    found: list[str] = []
    if not directory:
        return found
    for dotted in SECRET_KEYS:
        path = Path(directory) / dotted
        if not path.is_file():
            continue
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read credential {dotted}: {exc}") from exc
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
        found.append(dotted)
    return found


def _env_name(loc: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + "__".join(str(p).upper() for p in loc)


def _lookup(data: dict[str, Any], loc: tuple[int | str, ...]) -> tuple[bool, Any]:
    node: Any = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False, None
    return True, node


def _describe(
    exc: ValidationError, path: Path | None, data: dict[str, Any], secrets: list[str]
) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc)
        env = _env_name(loc)
        if env in os.environ or env.upper() in {k.upper() for k in os.environ}:
            source = f"environment variable {env}"
            value: Any = os.environ.get(env, "?")
        elif key in secrets:
            source, value = f"credential file {key}", "<secret>"
        else:
            present, value = _lookup(data, loc)
            source = str(path) if path else "built-in defaults"
            if not present:
                value = "<missing>"
        if err["type"] == "extra_forbidden":
            expected = "no such setting (see config.example.toml for the known keys)"
        else:
            expected = err["msg"]
        # A secret's value never reaches a log or a terminal, even when it is the wrong type.
        shown = "<secret>" if key in SECRET_KEYS or key in secrets else repr(value)
        lines.append(f"{source}: key '{key}' = {shown}: {expected}")
    return "; ".join(lines)


def load_settings(config: Path | None = None) -> Settings:
    """Build the settings; raise ConfigError with an operator-facing message when they are bad."""
    found = config_path(config)
    path = Path(found) if found is not None else None
    data: dict[str, Any] = _read_toml(path) if path else {}
    secrets = _read_credentials(data)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, data, secrets)) from exc
