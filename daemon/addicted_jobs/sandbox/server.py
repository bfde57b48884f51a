"""A fake Addic7ed (at the root) and TMDB (under /tmdb/3/) served over real HTTP on loopback.

For tests, demos and benchmarks. Faults can be switched at run time through `Sandbox.faults`;
every request is counted and remembered so tests can assert on what the clients sent.
Run alone with: python -m addicted_jobs.sandbox --shows 1000 --port 8080
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
from collections import Counter, deque
from typing import Literal

from aiohttp import web

from addicted_jobs.sandbox import tmdb
from addicted_jobs.sandbox.data import Catalogue, srt_charset, srt_text
from addicted_jobs.sandbox.faults import FaultConfig, SeenRequest, reset_connection
from addicted_jobs.sandbox.pages import (
    LIMIT_PAGE,
    LOGIN_PAGE,
    page_bytes,
    panel_page,
    season_page,
    seasons_page,
    shows_page,
)
from addicted_jobs.sandbox.tmdb import Handler

__all__ = ["FaultConfig", "Sandbox", "SeenRequest", "main"]  # the faults are set through here

TMDB_PREFIX = "/tmdb/3"


class Sandbox:
    """The fake upstreams. `await start()` returns the Addic7ed base URL; `await stop()` ends it."""

    def __init__(
        self,
        shows: int = 200,
        seed: int = 1,
        *,
        quota_per_cookie: int = 40,
        anonymous_quota: int = 15,
        faults: FaultConfig | None = None,
        tmdb_api_key: str = "sandbox-key",
        host: str = "127.0.0.1",
        port: int = 0,
        history: int = 10_000,
    ) -> None:
        self.catalogue = Catalogue(shows, seed)
        self.seed = seed
        self.quota_per_cookie = quota_per_cookie
        self.anonymous_quota = anonymous_quota
        self.faults = faults or FaultConfig()
        self.tmdb_api_key = tmdb_api_key
        self.requests: Counter[str] = Counter()
        self.cookies_seen: Counter[str | None] = Counter()
        self.history: deque[SeenRequest] = deque(maxlen=history)
        self.inbox_cleared: Counter[str] = Counter()
        # How a spent quota is answered: Addic7ed's 302 to /downloadexceeded.php, or a 200 page.
        self.exceeded_answer: Literal["redirect", "page"] = "redirect"
        # When set, every download answers 200 with the login page instead of the file.
        self.login_wall = False
        # When set, season lists and tables also carry options and rows no parser can read.
        self.hostile_cells = False
        self._used: Counter[str | None] = Counter()
        self._rng = random.Random(seed)
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    @property
    def addic7ed_url(self) -> str:
        return self.base_url

    @property
    def tmdb_url(self) -> str:
        return f"{self.base_url.rstrip('/')}{TMDB_PREFIX}/"

    async def start(self) -> str:
        app = web.Application(middlewares=[self._observe_and_break])
        app.router.add_get("/ajax_getShows.php", self._shows)
        app.router.add_get("/ajax_getSeasons.php", self._seasons)
        app.router.add_get("/ajax_loadShow.php", self._season)
        app.router.add_get("/panel.php", self._panel)
        app.router.add_post("/mailactions.php", self._clear_inbox)
        app.router.add_get("/updated/{lang:\\d+}/{episode:\\d+}/{version:\\d+}", self._download)
        app.router.add_get("/original/{episode:\\d+}/{version:\\d+}", self._download)
        app.router.add_get("/downloadexceeded.php", self._plain_page)
        app.router.add_get("/show/{show_id}", self._plain_page)
        app.add_subapp(TMDB_PREFIX, tmdb.tmdb_app(self.seed, self.tmdb_api_key))
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, self._host, self._port).start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}/"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def downloads_used(self, cookie: str | None) -> int:
        return self._used[cookie]

    def set_downloads_used(self, cookie: str | None, used: int) -> None:
        self._used[cookie] = used

    def reset_quotas(self) -> None:
        """A new day on Addic7ed: every account may download again."""
        self._used.clear()

    def reset_counters(self) -> None:
        self.requests.clear()
        self.cookies_seen.clear()
        self.history.clear()

    def seen(self, path: str) -> list[SeenRequest]:
        return [request for request in self.history if request.path == path]

    @web.middleware
    async def _observe_and_break(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        cookie = request.headers.get("Cookie")
        self.requests[request.path] += 1
        self.cookies_seen[cookie] += 1
        self.history.append(
            SeenRequest(
                request.method,
                request.path,
                dict(request.query),
                cookie,
                request.headers.get("User-Agent"),
                request.headers.get("Referer"),
            )
        )
        faults = self.faults
        if not faults.applies_to(request.path):
            return await handler(request)
        if faults.latency > 0:
            await asyncio.sleep(faults.latency)
        if faults.reset_next > 0 or (faults.reset_rate and self._rng.random() < faults.reset_rate):
            faults.reset_next = max(0, faults.reset_next - 1)
            reset_connection(request)
            raise web.HTTPServiceUnavailable()  # never sent: the connection is gone
        if faults.fail_next > 0 or (faults.error_rate and self._rng.random() < faults.error_rate):
            faults.fail_next = max(0, faults.fail_next - 1)
            return _html(
                f"<html><body><h1>{faults.error_status} Error</h1></body></html>",
                faults.error_status,
            )
        response = await handler(request)
        is_html = isinstance(response, web.Response) and response.content_type == "text/html"
        if is_html and faults.truncate_rate and self._rng.random() < faults.truncate_rate:
            assert isinstance(response, web.Response) and isinstance(response.body, bytes)
            response.body = response.body[: len(response.body) * 55 // 100]
        return response

    async def _shows(self, request: web.Request) -> web.Response:
        # 100,000 options take a while to write: keep the loop (shared with tests) responsive.
        return _html(await asyncio.to_thread(shows_page, self.catalogue))

    async def _seasons(self, request: web.Request) -> web.Response:
        show = _int(request.query.get("showID"))
        return _html(seasons_page(self.catalogue, show, hostile=self.hostile_cells))

    async def _season(self, request: web.Request) -> web.Response:
        show, season = _int(request.query.get("show")), _int(request.query.get("season"))
        return _html(season_page(self.catalogue, show, season, hostile=self.hostile_cells))

    async def _panel(self, request: web.Request) -> web.Response:
        cookie = request.headers.get("Cookie")
        if not cookie:
            raise web.HTTPFound("/login.php")
        user = f"sandbox-user-{tmdb.stable_hash(cookie) % 10_000}"
        return _html(panel_page(self._used[cookie], self.quota_per_cookie, user))

    async def _clear_inbox(self, request: web.Request) -> web.Response:
        cookie = request.headers.get("Cookie")
        form = await request.post()
        if not cookie or form.get("delall") != "all" or "inboxdelall" not in form:
            return _html("<html><body>Nothing to delete.</body></html>")
        self.inbox_cleared[cookie] += 1
        raise web.HTTPFound("/mailbox.php")

    async def _download(self, request: web.Request) -> web.Response:
        found = self.catalogue.subtitle_by_href(request.path)
        if found is None:
            return _html("<html><body><h1>404 Not Found</h1></body></html>", 404)
        episode, subtitle = found
        if subtitle.deleted:
            raise web.HTTPFound(f"/show/{episode.episode_id // 100_000}")
        if self.login_wall:
            return _html(LOGIN_PAGE)
        cookie = request.headers.get("Cookie")
        quota = self.quota_per_cookie if cookie else self.anonymous_quota
        if self._used[cookie] >= quota:
            if self.exceeded_answer == "page":
                return _html(LIMIT_PAGE)
            raise web.HTTPFound("/downloadexceeded.php")
        self._used[cookie] += 1
        name = f"{episode.title}.{subtitle.language}.{subtitle.version}.Addic7ed.com.srt"
        # UTF-8 (with or without a BOM) says so; a Latin-1 file names no charset at all.
        charset = srt_charset(self.seed, subtitle)
        return web.Response(
            body=srt_text(self.seed, subtitle),
            headers={
                "Content-Type": "text/srt" if charset == "latin-1" else "text/srt; charset=utf-8",
                "Content-Disposition": f'attachment; filename="{name}"',
            },
        )

    async def _plain_page(self, request: web.Request) -> web.Response:
        return _html(f"<html><body><p>{request.path}</p></body></html>")


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        return -1


def _html(text: str, status: int = 200) -> web.Response:
    # Addic7ed's Content-Type names no charset; the bytes are UTF-8 with a few stray bytes.
    response = web.Response(
        body=page_bytes(text), status=status, headers={"Content-Type": "text/html"}
    )
    # Addic7ed hands out sessions; a client that kept them would mix up credentials.
    response.set_cookie("PHPSESSID", f"sandbox{random.getrandbits(32):08x}", path="/")
    return response


async def _serve(args: argparse.Namespace) -> None:
    faults = FaultConfig(error_rate=args.error_rate, latency=args.latency)
    sandbox = Sandbox(
        args.shows,
        args.seed,
        quota_per_cookie=args.quota,
        faults=faults,
        tmdb_api_key=args.api_key,
        host=args.host,
        port=args.port,
    )
    await sandbox.start()
    print(f"addic7ed {sandbox.addic7ed_url}\ntmdb {sandbox.tmdb_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await sandbox.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Addic7ed and TMDB on loopback.")
    parser.add_argument("--shows", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--quota", type=int, default=40, help="downloads per cookie per day")
    parser.add_argument("--api-key", default="sandbox-key", help="the TMDB api_key to require")
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    asyncio.run(_serve(parser.parse_args(argv)))
