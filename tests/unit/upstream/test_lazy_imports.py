"""The upstream clients' HTTP and retry libraries load with their first request, and Addic7ed's
page parsers (selectolax), its cookie jar and both upstreams' parsed records with the first page,
client or answer that needs them, not with the daemon: httpx and tenacity are ~50 ms of a
start-up of ~0.6 s, the parsers, the jar and the records ~20 ms more, and a daemon draining
engine jobs never calls an upstream."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
import addicted_jobs.app
from addicted_jobs.settings import Addic7edSettings, TmdbSettings
from addicted_jobs.upstream.addic7ed import Addic7edClient
from addicted_jobs.upstream.resilience import resilience_of
from addicted_jobs.upstream.tmdb import TmdbClient

LIBRARIES = ("httpx", "tenacity")
PAGES = ("http.cookiejar", "selectolax", "addicted_jobs.upstream.addic7ed_html",
         "addicted_jobs.upstream.addic7ed_download", "addicted_jobs.upstream.models")
once = {"retries": 1, "retry_base_s": 0, "retry_max_s": 0}
addic7ed = Addic7edClient(
    "http://127.0.0.1:9/", requests_per_second=0, **resilience_of(Addic7edSettings(**once))
)
tmdb = TmdbClient("http://127.0.0.1:9/", "key", **resilience_of(TmdbSettings(**once)))
print([m for m in LIBRARIES if m in sys.modules])
print([m for m in PAGES if m in sys.modules])

import asyncio
from addicted_jobs.upstream.errors import UpstreamUnavailable

async def one_request():
    try:
        await addic7ed.download(None, "/original/1/1")  # port 9 (discard): refused
    except UpstreamUnavailable as exc:
        print("refused:", "ConnectError" in str(exc))
    finally:
        await addic7ed.aclose()
        await tmdb.aclose()

asyncio.run(one_request())
print([m for m in LIBRARIES if m in sys.modules])
print([m for m in PAGES if m in sys.modules])
"""


def test_the_clients_load_httpx_and_tenacity_with_their_first_request() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()  # the retry's warning is logged in between
    built, built_pages, after, after_pages = lines[0], lines[1], lines[-2], lines[-1]
    request = next(line for line in lines if line.startswith("refused:"))
    assert built == "[]"  # the daemon and both clients built: neither library loaded
    # The request went through the retry and transport layers that load them on first use, and
    # its failure was classified as a transport error (retried, then unavailable).
    assert request == "refused: True"
    assert after == "['httpx', 'tenacity']"
    # Built, the Addic7ed client had no jar and no parser yet. The request built its HTTP client
    # (httpx itself imports http.cookiejar; that the client's jar refuses every cookie is
    # test_addic7ed_client.py's test_headers_cookie_and_no_cookie_jar), and a refused download
    # parses and reads nothing.
    assert built_pages == "[]"
    assert after_pages == "['http.cookiejar']"
