"""The asyncpg pool, the embedded PostgreSQL when no DSN is set, the instance lock, and the
schema migration runner (numbered plain SQL files, one transaction each, checksummed).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from addicted_jobs.embedded_pg import EmbeddedPostgres, EmbeddedPostgresError
from addicted_jobs.pools import (
    CLAIM_POOL_SIZE,
    ENGINE_POOL_SIZE,
    ENGINE_STATEMENT_TIMEOUT_S,
    BoundedPool,
    create_bounded_pool,
)

log = structlog.get_logger(__name__)

MIGRATION_FILE = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")
# Every advisory lock of the daemon, as (LOCK_NAMESPACE, key): arbitrary but fixed, and two int4
# halves keep them readable in pg_locks. One table, so no two features ever pick the same key.
LOCK_NAMESPACE = 0x41_4A  # "AJ"
MIGRATION_LOCK = 1  # schema migrations, one runner at a time (session lock)
INSTANCE_LOCK = 2  # one daemon per database without [cluster] (session lock)
ONETIME_LOCK = 3  # one-time data migrations, one runner at a time (session lock)
REAPER_LOCK = 4  # the cluster's reaper of dead nodes, one at a time (transaction lock)
MERGE_LOCK = 20  # catalog merges of one source, one at a time (transaction lock)
# (CAP_NAMESPACE, hashtext(job type)): one claim at a time per capped type across a cluster.
CAP_NAMESPACE = LOCK_NAMESPACE + 1

# Where a query may run: a pool, a connection, or a connection acquired from a pool.
Executor = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy
Conn = asyncpg.Connection | PoolConnectionProxy


# The database cannot be reached right now (down, restarting, out of connections): wait and retry.
# InternalClientError is asyncpg's state after the server dropped a connection mid-reset.
UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)
# The engine's loops also back off on any other database error rather than die: a vital task
# that dies takes the daemon with it, and a failing statement is logged each time it is retried.
DB_ERRORS = (*UNREACHABLE, asyncpg.PostgresError)


class DatabaseError(RuntimeError):
    """A database problem the operator must act on; the message says what and where."""


class AnotherInstanceRunning(DatabaseError):
    pass


class DatabaseConfigError(DatabaseError):
    """The configured DSN cannot be used as written (the operator must fix it: exit 78)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir() -> Path:
    package = Path(__file__).resolve().parent
    for candidate in (package / "_migrations", package.parents[1] / "migrations"):
        if candidate.is_dir():
            return candidate
    raise DatabaseError(f"no migrations directory next to {package}")


def load_migrations(directory: Path | None = None) -> list[Migration]:
    directory = directory or migrations_dir()
    found: list[Migration] = []
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = MIGRATION_FILE.match(path.name)
        if not match:
            raise DatabaseError(f"{path}: migration files are named NNN_snake_name.sql")
        found.append(Migration(int(match[1]), match[2], path, path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise DatabaseError(f"{directory}: two migration files share a number")
    return sorted(found, key=lambda m: m.version)


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str
    applied_at: Any
    duration_ms: float


async def apply_migrations(
    conn: asyncpg.Connection | PoolConnectionProxy, migrations: list[Migration] | None = None
) -> list[Migration]:
    """Apply pending migrations in order under an advisory lock; refuse a changed applied file."""
    migrations = load_migrations() if migrations is None else migrations
    await conn.execute("SELECT pg_advisory_lock($1, $2)", LOCK_NAMESPACE, MIGRATION_LOCK)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now(), duration_ms double precision NOT NULL)"""
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        applied = {r["version"]: r for r in rows}
        done: list[Migration] = []
        for migration in migrations:
            row = applied.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise DatabaseError(
                        f"{migration.path}: schema migration {migration.version} was changed after it "
                        f"was applied (recorded checksum {row['checksum'][:12]}, file {migration.checksum[:12]}); "
                        "restore the file and add a new migration instead"
                    )
                continue
            started = time.monotonic()
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                        (time.monotonic() - started) * 1000,
                    )
            except asyncpg.PostgresError as exc:
                raise DatabaseError(f"{migration.path}: schema migration failed: {exc}") from exc
            log.info(
                "schema migration applied",
                version=migration.version,
                name=migration.name,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
            )
            done.append(migration)
        return done
    finally:
        await release_session_lock(conn, MIGRATION_LOCK)


async def applied_migrations(
    conn: asyncpg.Connection | PoolConnectionProxy,
) -> list[AppliedMigration]:
    rows = await conn.fetch(
        "SELECT version, name, checksum, applied_at, duration_ms FROM schema_migrations ORDER BY version"
    )
    return [AppliedMigration(**dict(r)) for r in rows]


# JIT compiles any plan estimated above jit_above_cost, on every run: 15 ms for a 2 ms claim whose
# estimate is inflated by its recursive part. Queue statements are short; they never gain from it.
SERVER_SETTINGS = {"jit": "off"}
# Issue 17: the "pid@host" this process runs jobs as, a session setting of every connection it
# opens, so the claim records who ran each attempt without a parameter (store._CLAIM).
SERVER_SETTINGS["daemon.runner"] = f"{os.getpid()}@{socket.gethostname()}"


async def try_session_lock(conn: Conn, key: int) -> bool:
    """Take advisory lock (LOCK_NAMESPACE, `key`) for the session if it is free; never waits."""
    got: bool = await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", LOCK_NAMESPACE, key)
    return got


async def release_session_lock(conn: asyncpg.Connection | PoolConnectionProxy, key: int) -> None:
    """Release a session advisory lock; a connection that cannot is terminated, so no pooled
    connection is ever handed out still holding it (see keep_session)."""
    try:
        await conn.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_NAMESPACE, key)
    except BaseException:
        conn.terminate()
        raise


async def keep_session(conn: asyncpg.Connection) -> None:
    """The pool's release hook, in place of asyncpg's reset query, which costs a round trip and
    four statements on every release: on every claim and every status flush. Safe because pooled
    connections keep no session state: nothing runs SET, LISTEN has its own connection, and the
    two start-up advisory locks go through release_session_lock. asyncpg still rolls back an open
    transaction before this runs."""


# The daemon's pool as tests and benches must build it too, so they exercise what runs.
POOL_OPTIONS: dict[str, Any] = {"server_settings": SERVER_SETTINGS, "reset": keep_session}
# The engine's own pool plans every statement for the table as it is now. A prepared statement
# run five times gets a generic plan, cached for the session and re-made only when something
# invalidates it (DDL, ANALYZE). A daemon started on an empty table got a generic claim whose lock
# step read jobs.jobs sequentially (cheapest on one page) and kept it while the table grew and
# autovacuum had not analysed it yet: 200 jobs/s in bench/soak.py, each claim comparing every row
# with every id (tests/integration/jobs/test_claim_plans.py). Planning the claim costs ~1 ms per
# batch of up to claim_batch jobs; the client pool's short statements keep their cached plans.
# jobs.finish, called here by the flusher, keeps generic plans of its own (migrations/052).
ENGINE_SERVER_SETTINGS = {**SERVER_SETTINGS, "plan_cache_mode": "force_custom_plan"}
ENGINE_POOL_OPTIONS: dict[str, Any] = {**POOL_OPTIONS, "server_settings": ENGINE_SERVER_SETTINGS}
# The dispatchers' claims and due-time reads (without [cluster]) run on a pool of their own that
# keeps generic plans (issue 20). A lone job waits for one claim, and planning it anew took ~0.55
# ms of its ~1.6 ms (the due-time read after it: 0.3 of 0.6 ms) on this 2-core box; PostgreSQL
# does not choose the generic plans of the claim and read bounded by type by itself, their custom
# plans looking cheaper. With it, the bench's lone jobs start ~1.5 ms after their enqueue, not 2-3.
# The trap above is closed by enable_seqscan=off: every access to jobs.jobs in these statements
# has an index (by queue, type and due time; by id), which a generic plan then
# keeps however small the table was when it was made (tests/integration/jobs/test_claim_plans.py).
# Only these statements run there: recovery, pruning and the cluster's counts may need a
# sequential scan and stay on the engine pool.
CLAIM_SERVER_SETTINGS = {
    **SERVER_SETTINGS,
    "plan_cache_mode": "force_generic_plan",
    "enable_seqscan": "off",
}
CLAIM_POOL_OPTIONS: dict[str, Any] = {**POOL_OPTIONS, "server_settings": CLAIM_SERVER_SETTINGS}


async def create_engine_pool(
    dsn: str, *, claims: bool = False, connect_timeout: float = 10.0
) -> asyncpg.Pool:
    """One of the engine's own pools as the daemon builds it (tests build theirs with this too):
    the engine pool (status writes, recovery, pruning, a cluster's claims; ENGINE_POOL_OPTIONS,
    up to ENGINE_POOL_SIZE connections) or, with `claims`, the dispatchers' claim pool
    (CLAIM_POOL_OPTIONS, up to CLAIM_POOL_SIZE). One connection opened at once, `connect_timeout`
    seconds per connection, ENGINE_STATEMENT_TIMEOUT_S for every statement. Raises what
    asyncpg.create_pool raises (a bad DSN, an unreachable server); asyncpg (>= 0.32) has then
    terminated the connections it had opened."""
    size, options = (
        (CLAIM_POOL_SIZE, CLAIM_POOL_OPTIONS) if claims else (ENGINE_POOL_SIZE, ENGINE_POOL_OPTIONS)
    )
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=size,
        timeout=connect_timeout,
        init=_init_connection,
        command_timeout=ENGINE_STATEMENT_TIMEOUT_S,
        **options,
    )


# A peer that vanished (host down, connection dropped by a firewall) is noticed by the kernel
# within about 25 s instead of the default two hours; TCP_USER_TIMEOUT bounds a write nobody
# acknowledges. A path that still acknowledges but never answers (a half-open connection behind
# a proxy) is caught by the health checks' deadlines instead (HEALTH_CHECK_TIMEOUT_S).
KEEPALIVE = {"TCP_KEEPIDLE": 10, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3, "TCP_USER_TIMEOUT": 30_000}
HEALTH_CHECK_TIMEOUT_S = 3.0


def enable_keepalive(conn: asyncpg.Connection) -> bool:
    """Turn on TCP keepalives (KEEPALIVE) on a TCP connection; False for a Unix socket. asyncpg
    has no option for it, so the socket comes from the connection's transport."""
    transport = getattr(conn, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in KEEPALIVE.items():
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    return True


async def _init_connection(conn: asyncpg.Connection) -> None:
    enable_keepalive(conn)
    await conn.set_type_codec(
        "jsonb", encoder=_json_dumps, decoder=_json_loads, schema="pg_catalog"
    )
    await conn.set_type_codec("json", encoder=_json_dumps, decoder=_json_loads, schema="pg_catalog")


def _json_dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _json_loads(value: str) -> Any:
    return json.loads(value)


class Database:
    """Owns the pool, the embedded server (if any) and the instance lock connection."""

    def __init__(
        self,
        dsn: str,
        state_dir: Path,
        *,
        pool_min: int = 2,
        pool_max: int = 10,
        connect_timeout: float = 10.0,
        acquire_timeout: float = 5.0,
        spare_connections: int = 0,
    ) -> None:
        self._configured_dsn = dsn
        # Connections opened with the pools for connect() to hand out: the daemon passes 2, for
        # the instance lock and LISTEN, each otherwise a connection set up after the other on
        # the way to the first job (~5 ms apiece on this box).
        self._spare_count = spare_connections
        self._spares: list[asyncpg.Connection] = []
        self._acquire_timeout = acquire_timeout
        self._state_dir = state_dir
        self._pool_min, self._pool_max = pool_min, pool_max
        self._timeout = connect_timeout
        self.embedded: EmbeddedPostgres | None = None
        self.dsn = dsn
        self.pool: BoundedPool | None = None  # socket requests and jobs, bounded waits
        self.engine_pool: asyncpg.Pool | None = None  # the engine's alone (addicted_jobs.pools)
        self.claim_pool: asyncpg.Pool | None = None  # the dispatchers' claims (CLAIM_POOL_OPTIONS)
        self._lock_conn: asyncpg.Connection | None = None
        # [cluster] enabled (issue 19): every node holds the instance lock shared, so nodes run
        # together while a daemon without clustering (exclusive) and a cluster never meet.
        self.instance_lock_shared = False

    async def start(self) -> None:
        if not self._configured_dsn:
            self.embedded = EmbeddedPostgres(self._state_dir)
            try:
                self.dsn = await asyncio.to_thread(self.embedded.start)
            except EmbeddedPostgresError as exc:
                raise DatabaseError(f"the embedded database did not start: {exc}") from None
            log.info(
                "embedded database started",
                data=str(self.embedded.data),
                socket=str(self.embedded.socket_dir),
            )
        try:
            await self._open_pools()
        except (asyncpg.ClientConfigurationError, ValueError) as exc:
            # Its message may quote the DSN: scrubbed, and `from None` keeps the original (and
            # its traceback) out of every log.
            raise DatabaseConfigError(
                f"database.dsn ({redact(self.dsn)}) is not usable: {scrub(str(exc), self.dsn)}"
            ) from None
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            raise DatabaseError(
                f"cannot connect to the database ({redact(self.dsn)}): {scrub(str(exc), self.dsn)}"
            ) from None

    async def _open_pools(self) -> None:
        """Open the client, engine and claim pools and the spare connections together: each
        first connection waits for the server to start a backend, and one pool after another this
        was ~25 ms of the daemon's start-up. None is kept unless all open: on the first failure,
        or when start() is cancelled, the others are cancelled, each that did open is terminated
        (its connections dropped at once), and the failure is raised (asyncpg's, or
        CancelledError)."""
        client = asyncio.ensure_future(
            create_bounded_pool(
                self.dsn,
                self._acquire_timeout,
                min_size=self._pool_min,
                max_size=self._pool_max,
                timeout=self._timeout,
                init=_init_connection,
                command_timeout=None,
                **POOL_OPTIONS,
            )
        )
        engine = asyncio.ensure_future(create_engine_pool(self.dsn, connect_timeout=self._timeout))
        claim = asyncio.ensure_future(
            create_engine_pool(self.dsn, claims=True, connect_timeout=self._timeout)
        )
        spares = [asyncio.ensure_future(self._open()) for _ in range(self._spare_count)]
        tasks: list[asyncio.Future[Any]]  # pools and connections: each has terminate()
        tasks = [client, engine, claim, *spares]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for task in tasks:
                if not task.cancelled() and task.exception() is None:
                    task.result().terminate()
            raise
        self._spares = [task.result() for task in spares]
        self.pool, self.engine_pool, self.claim_pool = (
            client.result(),
            engine.result(),
            claim.result(),
        )

    async def connect(self, application_name: str | None = None) -> asyncpg.Connection:
        """A connection outside the pool, for LISTEN and long-held advisory locks;
        `application_name` names it in pg_stat_activity (a cluster node's lock connection).
        Without one, a spare opened with the pools (to the DSN of start()) is handed out first,
        once it has answered within HEALTH_CHECK_TIMEOUT_S: a spare the server ended meanwhile
        (a restart, pg_terminate_backend) is dropped and the next one tried, then a new one
        opened. Raises what asyncpg.connect raises."""
        while application_name is None and self._spares:
            spare = self._spares.pop()
            try:
                await spare.fetchval("SELECT 1", timeout=HEALTH_CHECK_TIMEOUT_S)
                return spare
            except (*UNREACHABLE, asyncpg.PostgresError):
                spare.terminate()
        return await self._open(application_name)

    async def _open(self, application_name: str | None = None) -> asyncpg.Connection:
        settings = dict(SERVER_SETTINGS)
        if application_name is not None:
            settings["application_name"] = application_name
        conn: asyncpg.Connection = await asyncpg.connect(
            self.dsn, timeout=self._timeout, server_settings=settings
        )
        try:
            await _init_connection(conn)
        except BaseException:
            # Failed or cancelled while set up (a sibling pool refused in _open_pools, a stop
            # during start-up): dropped here, since no caller ever holds it.
            conn.terminate()
            raise
        return conn

    async def take_instance_lock(self) -> None:
        """Hold a session advisory lock so a second daemon on this database refuses to start."""
        conn = await self.connect()
        take = (
            "pg_try_advisory_lock_shared" if self.instance_lock_shared else "pg_try_advisory_lock"
        )
        got = await conn.fetchval(f"SELECT {take}($1, $2)", LOCK_NAMESPACE, INSTANCE_LOCK)
        if not got:
            holder = await conn.fetchrow(
                """SELECT a.pid, a.client_addr, a.backend_start FROM pg_locks l
                   JOIN pg_stat_activity a ON a.pid = l.pid
                   WHERE l.locktype = 'advisory' AND l.classid = $1 AND l.objid = $2 AND l.granted""",
                LOCK_NAMESPACE,
                INSTANCE_LOCK,
            )
            await conn.close()
            since = f" since {holder['backend_start']:%Y-%m-%d %H:%M:%S}" if holder else ""
            if self.instance_lock_shared:
                raise AnotherInstanceRunning(
                    f"a daemon without [cluster] enabled runs on this database "
                    f"({redact(self.dsn)}){since}; stop it, or enable [cluster] on it too"
                )
            raise AnotherInstanceRunning(
                f"another addicted-jobs daemon already runs on this database ({redact(self.dsn)}){since}; "
                "stop it first, or point this one at another database"
            )
        self._lock_conn = conn
        if self.embedded is not None:
            self.embedded.own()  # no other daemon uses it: an adopted server is ours to stop

    async def instance_lock_alive(self) -> bool:
        """Prove the lock's session still answers, within HEALTH_CHECK_TIMEOUT_S: a connection
        that went silent (half-open) must not pass for a held lock."""
        conn = self._lock_conn
        if conn is None or conn.is_closed():
            return False
        try:
            await conn.fetchval("SELECT 1", timeout=HEALTH_CHECK_TIMEOUT_S)
            return True
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False

    async def keep_instance_lock(self, on_held: Callable[[bool], None], every: float = 2.0) -> None:
        """Check the instance lock every `every` seconds; `on_held(False)` as soon as it cannot be
        proven (the engine stops claiming: another daemon may take the database over once the
        server drops our session), `on_held(True)` once it is proven or taken again. Returns
        by raising AnotherInstanceRunning when another daemon took it meanwhile."""
        held = True
        while True:
            await asyncio.sleep(every)
            if await self.instance_lock_alive():
                if not held:
                    held = True
                    on_held(True)
                continue
            if held:
                held = False
                on_held(False)
                log.warning(
                    "instance lock connection did not answer; claiming paused while it is replaced",
                    timeout_s=HEALTH_CHECK_TIMEOUT_S,
                )
            try:
                await self.retake_instance_lock()
            except AnotherInstanceRunning:
                raise
            except (*UNREACHABLE, asyncpg.PostgresError):
                continue  # still unreachable; the engine reports the outage
            log.warning("instance lock taken again after losing its database session")
            held = True
            on_held(True)

    async def retake_instance_lock(self) -> None:
        if self._lock_conn is not None and not self._lock_conn.is_closed():
            self._lock_conn.terminate()
        self._lock_conn = None
        await self.take_instance_lock()

    async def close_spares(self) -> None:
        """Close the spare connections nobody asked for (the daemon calls it once its start-up
        has taken what it needed, so none stays open and idle for the life of the process)."""
        while self._spares:
            await close_or_terminate(self._spares.pop())

    async def close(self) -> None:
        if self._lock_conn is not None and not self._lock_conn.is_closed():
            await close_or_terminate(self._lock_conn)
        await self.close_spares()
        if self.pool is not None:
            await self.pool.close()
        if self.engine_pool is not None:
            await self.engine_pool.close()
        if self.claim_pool is not None:
            await self.claim_pool.close()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
            log.info("embedded database stopped")


SECRET_QUERY_KEYS = ("password", "sslpassword", "passfile", "sslkey")


def dsn_secrets(dsn: str) -> list[str]:
    """The secret parts of a DSN: the password of its user-info (everything between the first
    ':' and the LAST '@' of the authority, so a password holding '@' or '/' is whole) and the
    values of password-like query parameters. Longest first, for scrubbing."""
    found: list[str] = []
    _, sep, rest = dsn.partition("://")
    if sep:
        authority = rest.split("?", 1)[0]
        userinfo, at, _ = authority.rpartition("@")
        if at and ":" in userinfo:
            found.append(userinfo.split(":", 1)[1])
    for match in re.finditer(
        r"(?i)\b(" + "|".join(SECRET_QUERY_KEYS) + r")\s*=\s*('[^']*'|[^&\s]*)", dsn
    ):
        found.append(match[2].strip("'"))
    return sorted({s for s in found if s}, key=len, reverse=True)


def scrub(text: str, dsn: str) -> str:
    """`text` (an error message, say) with every secret part of `dsn` replaced by ***."""
    for secret in dsn_secrets(dsn):
        text = text.replace(secret, "***")
    return text


async def close_or_terminate(conn: asyncpg.Connection) -> None:
    """Close a connection politely, within HEALTH_CHECK_TIMEOUT_S; a half-open one never answers
    the goodbye, so it is dropped instead (a shutdown must not hang on it)."""
    try:
        await conn.close(timeout=HEALTH_CHECK_TIMEOUT_S)
    except (TimeoutError, *UNREACHABLE, asyncpg.PostgresError):
        conn.terminate()


def redact(dsn: str) -> str:
    """The DSN without its password, for logs and error messages: user-info passwords (with any
    '@' in them), `?password=`-style query parameters and keyword-form `password=` all become ***."""
    out = dsn
    _, sep, rest = dsn.partition("://")
    if sep:
        authority, q, query = rest.partition("?")
        userinfo, at, hostpart = authority.rpartition("@")
        if at and ":" in userinfo:
            authority = f"{userinfo.split(':', 1)[0]}:***@{hostpart}"
        out = f"{dsn.partition('://')[0]}://{authority}{q}{query}"
    out = re.sub(
        r"(?i)\b(" + "|".join(SECRET_QUERY_KEYS) + r")(\s*=\s*)('[^']*'|[^&\s]*)", r"\1\2***", out
    )
    return scrub(out, dsn)
