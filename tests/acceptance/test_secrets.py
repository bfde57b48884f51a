"""Secrets never leave: a distinct canary in every secret setting and in a stored cookie, the daemon
run through its jobs at debug level, its CLI commands and its error paths; then every log line,
socket reply, CLI output, job row and `ps` line is searched for the canaries.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import asyncpg
import pytest

from addicted_jobs.control.client import ControlClient, DaemonError
from addicted_jobs.sandbox import Sandbox
from tests.plugins.daemon import DaemonProcess
from tests.plugins.s3 import S3_REGION, MotoServer
from tests.support import reliability as env

pytestmark = pytest.mark.asyncio

CANARIES = {
    "database.dsn": "dbpw-canary-7f3a",
    "tmdb.api_key": "tmdb-canary-19c2",
    "addic7ed.proxy": "proxypw-canary-55e0",
    "storage.s3.access_key_id": "s3id-canary-a1b2",
    "storage.s3.secret_access_key": "s3secret-canary-c3d4",
    "cookie": "wikisubtitlesuser=cookie-canary-9e8d",
}


def _with_password(dsn: str, password: str) -> str:
    # The test server trusts loopback connections, so the password is carried but never checked.
    scheme, _, rest = dsn.partition("://")
    user, _, host = rest.partition("@")
    # "%40" is an '@' inside the password, as the issue found.
    return f"{scheme}://{user}:{password}%40x@{host}"


def _leaks(text: str) -> list[str]:
    return [name for name, canary in CANARIES.items() if canary in text]


def _ps() -> str:
    return subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout


async def test_no_secret_reaches_a_log_line_reply_job_row_or_process_list(
    daemon_factory: Any, db_dsn: str, db_pool: asyncpg.Pool, moto_server: MotoServer
) -> None:
    seen: list[str] = []  # every reply and CLI output, searched at the end
    async with Sandbox(shows=6, tmdb_api_key=CANARIES["tmdb.api_key"]) as box:
        port = box.base_url.rstrip("/").rsplit(":", 1)[1]
        conf = env.config(
            _with_password(db_dsn, CANARIES["database.dsn"]),
            box,
            log={"level": "debug"},
        )
        # The sandbox answers absolute-form requests, so it is its own proxy: every Addic7ed
        # request carries the proxy's credentials and still works.
        conf["addic7ed"]["proxy"] = f"http://user:{CANARIES['addic7ed.proxy']}@127.0.0.1:{port}"
        conf["storage"] |= {
            "backend": "s3",
            "s3": {
                "endpoint_url": moto_server.endpoint_url,
                "bucket": moto_server.create_bucket(),
                "region": S3_REGION,
                "access_key_id": CANARIES["storage.s3.access_key_id"],
                "secret_access_key": CANARIES["storage.s3.secret_access_key"],
            },
        }
        drv = env.launch(daemon_factory, "canary", conf)
        await drv.start()
        daemon = drv.proc
        seen.append(_ps())

        sock = str(daemon.socket_path)
        # The cookie goes in on stdin (`-`): argv is world-readable through /proc.
        added = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "addicted_jobs", "credentials", "add", "-", "--socket", sock],
            input=CANARIES["cookie"],
            capture_output=True,
            text=True,
        )
        assert added.returncode == 0, added.stderr
        seen += [added.stdout, added.stderr, await drv.cli("credentials", "list")]

        # The jobs: a catalogue sync, show refreshes (cookie + proxy), TMDB mapping (api key),
        # downloads and S3 stores (keys).
        await drv.cli("enqueue", "refresh_available_shows")
        await env.settled(db_pool, 60, "the catalogue sync")
        shows = [r["id"] for r in await db_pool.fetch("SELECT id FROM tv_shows")]
        await drv.enqueue("refresh_single_show", ({"show_id": s} for s in shows))
        await drv.cli("enqueue", "map_show_tmdb")
        await env.settled(db_pool, 120, "the refreshes")
        subtitles = await db_pool.fetch("SELECT id FROM subtitles WHERE completed LIMIT 5")
        assert subtitles, "the refreshes found subtitles to download"
        await drv.enqueue("download_subtitle", ({"subtitle_id": r["id"]} for r in subtitles))
        await env.settled(db_pool, 120, "the downloads")
        stored = await db_pool.fetchval(
            "SELECT count(*) FROM subtitles WHERE stored_at IS NOT NULL"
        )
        assert stored, f"no subtitle stored: {await env.bad_jobs(db_pool)}"
        seen.append(await drv.cli("jobs", "--limit", "200"))
        seen.append(await drv.cli("queues", "--json"))
        seen.append(_ps())

        # Error paths: refused cookies, bad arguments, an unknown op, a refused reload.
        for op, args in (
            ("credentials-add", {"cookie": CANARIES["cookie"] + "\nX-Injected: 1"}),
            ("credentials-add", {"cookie": CANARIES["cookie"], "extra": 1}),
            ("credentials-add", {"cookie": 12}),
            ("enqueue", {"name": "nope", "args": {"x": CANARIES["cookie"]}}),
            ("no-such-op", {"cookie": CANARIES["cookie"]}),
        ):
            async with ControlClient(daemon.socket_path, timeout=30) as client:
                with pytest.raises(DaemonError) as refused:
                    await client.call(op, args)
            seen.append(f"{refused.value.code} {refused.value} {refused.value.details}")
        daemon.config["tmdb"]["api_key"] = 12  # the wrong type: refused, reported without value
        daemon.write_config()
        reload = await asyncio.to_thread(daemon.cli, "reload")
        assert reload.returncode == 1
        seen += [reload.stdout, reload.stderr]
        assert await drv.stop() == 0

    # A DSN the daemon cannot use, in each form: never printed with its password.
    for name, dsn in (
        ("keyword", f"host=127.0.0.1 user=postgres password={CANARIES['database.dsn']}"),
        ("unreachable", f"postgresql://postgres:{CANARIES['database.dsn']}@127.0.0.1:9/x"),
        ("badport", f"postgresql://postgres:{CANARIES['database.dsn']}@127.0.0.1:port/x"),
        ("query", f"postgresql://postgres@127.0.0.1:9/x?password={CANARIES['database.dsn']}"),
    ):
        bad: DaemonProcess = daemon_factory(
            f"dsn-{name}", {"database": {"dsn": dsn, "connect_timeout_s": 2}}
        )
        code = await asyncio.to_thread(lambda b=bad: b.start().wait_exit(60))
        assert code in (1, 78), (name, code, bad.log_text()[-2000:])
        if name in ("keyword", "badport"):
            assert code == 78, (name, bad.log_text()[-2000:])
        assert "Traceback" not in bad.log_text(), bad.log_text()[-2000:]
        seen.append(bad.log_text())

    rows = await db_pool.fetch("SELECT * FROM jobs.jobs")
    assert len(rows) > 10
    seen.append(repr([dict(r) for r in rows]))
    credentials = await db_pool.fetchval("SELECT count(*) FROM addicted_user_credentials")
    assert credentials == 1, "the cookie was stored (the test searched the right things)"
    log = daemon.log_text()
    # The test did exercise what carries each secret, at debug level:
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert "debug" in {e.get("level") for e in entries} and "HTTP Request" in log
    assert "tv/" in log or "search/tv" in log, "TMDB was called"
    leaks = {name: where for where in (log, *seen) for name in _leaks(where)}
    assert not leaks, f"secrets leaked: {sorted(leaks)}"
