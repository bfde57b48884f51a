"""Code the tests share (not tests, not fixtures): waiting for a condition with a deadline (never a
bare sleep) here, and one module per subject beside it:

- engine, control, onetime: the engine factory's type and recording handlers; the control socket
  kit; one-time migrations for the framework's tests
- catalogue, download, storage, subtitles, sandbox: the catalogue bench over the sandbox, the
  download bench, storage helpers and generated subtitle files
- addictedproxy, importer: an original-schema AddictedProxy database and the import run on it
- reliability, failover_proxy: the acceptance suite's daemon driver and a failover stand-in
- paths, database: the repository's and ../shared's paths; DSN arithmetic
- programs the tests start as subprocesses: catalogue_runner, onetime_runner; job modules the
  daemon loads through `[engine] job_modules`: cluster_jobs, side_jobs

Fixtures live in the conftest.py of the folder that uses them, or in tests/plugins/.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_until(
    probe: Callable[[], Awaitable[T]] | Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition",
) -> T:
    """Poll `probe` until it returns something truthy; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        result = probe()
        last = await result if asyncio.iscoroutine(result) else result  # type: ignore[assignment]
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {message}; last value {last!r}"
            )
        await asyncio.sleep(interval)
