"""A hostile upstream on loopback: every path answers with what its current mode serves, a gzip
bomb, an endless chunked body, a huge body, an implausibly long show list or a body in an
encoding we do not decode. `POST /_mode/{mode}` switches it (a daemon has one base URL).

Run as `python -m tests.plugins.hostile --port N` it prints `READY <port>` and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import zlib
from functools import cache

from aiohttp import web

MIB = 1024 * 1024
MODES = ("bomb", "endless", "huge", "huge-chunked", "many-shows", "brotli", "ok")
CHUNK = b"\0" * (64 * 1024)


@cache
def gzip_bomb(expanded: int = 1024 * MIB) -> bytes:
    """One gzip member that inflates to `expanded` zero bytes (~1 MiB per GiB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * MIB
    parts = [packer.compress(block) for _ in range(expanded // MIB)]
    parts.append(packer.flush())
    return b"".join(parts)


def show_list(shows: int) -> bytes:
    options = "".join(f'<option value="{i}">Show {i}</option>' for i in range(1, shows + 1))
    return (
        '<select name="qsShow" id="qsShow"><option value="0">[Select a show]</option>'
        f"{options}</select>"
    ).encode()


class Hostile:
    def __init__(self, huge_bytes: int = 500 * 1000 * 1000, many_shows: int = 60_000) -> None:
        self.mode = "bomb"
        self.huge_bytes = huge_bytes
        self.many_shows = many_shows
        self.served: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def _switch(self, request: web.Request) -> web.Response:
        mode = request.match_info["mode"]
        if mode not in MODES:
            return web.Response(status=400, text=f"modes: {', '.join(MODES)}")
        self.mode = mode
        return web.Response(text=mode)

    async def _any(self, request: web.Request) -> web.StreamResponse:
        mode = self.mode
        self.served[mode] = self.served.get(mode, 0) + 1
        if mode == "bomb":
            body = await asyncio.to_thread(gzip_bomb)
            return web.Response(
                body=body, headers={"Content-Encoding": "gzip", "Content-Type": "text/html"}
            )
        if mode == "many-shows":
            return web.Response(body=show_list(self.many_shows), content_type="text/html")
        if mode == "brotli":
            return web.Response(body=b"\x1b" * 100, headers={"Content-Encoding": "br"})
        if mode == "ok":
            return web.Response(body=show_list(3), content_type="text/html")
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        if mode == "huge":
            response.content_length = self.huge_bytes
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        sent = 0
        try:
            while mode == "endless" or sent < self.huge_bytes:
                await response.write(CHUNK)
                sent += len(CHUNK)
        except (ConnectionError, asyncio.CancelledError):
            return response  # the client gave up: what it should do
        await response.write_eof()
        return response

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_post("/_mode/{mode}", self._switch)
        app.router.add_route("*", "/{tail:.*}", self._any)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}/"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Hostile:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _serve(port: int) -> None:
    hostile = Hostile()
    url = await hostile.start(port=port)
    await asyncio.to_thread(gzip_bomb)  # built before READY, not during the first request
    print(f"READY {url.rstrip('/').rsplit(':', 1)[1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(_serve(parser.parse_args().port))
