"""Cuts a job that blocks the event loop past its timeout.

`asyncio.timeout` only fires when the loop gets control back, so a handler stuck in blocking code
(time.sleep, a busy loop, a sync HTTP call) would hold every queue hostage. A watchdog thread sees
the loop stop ticking and sends SIGUSR1 to the process; the handler runs in the main thread, in
the middle of the blocking code, and raises there only when the current task is a job past its
deadline. Blocking code outside jobs is never interrupted. Code that holds the GIL in C without
checking for signals cannot be cut this way; systemd's watchdog remains the last resort.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from types import FrameType

import structlog

log = structlog.get_logger(__name__)


class JobBlockedLoop(Exception):
    """Raised inside a job that kept the event loop blocked beyond its timeout."""


class LoopGuard:
    def __init__(self, *, stall_after: float = 1.0, check_every: float = 0.25) -> None:
        self._stall_after = stall_after
        self._check_every = check_every
        self._deadlines: dict[asyncio.Task[None], float] = {}
        self._last_tick = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.Task[None] | None = None

    def watch(self, task: asyncio.Task[None], timeout: float) -> None:
        self._deadlines[task] = time.monotonic() + timeout

    def forget(self, task: asyncio.Task[None]) -> None:
        self._deadlines.pop(task, None)

    def start(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        self._loop = asyncio.get_running_loop()
        signal.signal(signal.SIGUSR1, self._on_signal)
        self._ticker = asyncio.create_task(self._tick(), name="loopguard-tick")
        self._thread = threading.Thread(target=self._watch, name="loopguard", daemon=True)
        self._thread.start()

    async def _tick(self) -> None:
        while True:
            self._last_tick = time.monotonic()
            await asyncio.sleep(self._check_every)

    def _watch(self) -> None:
        while not self._stop.wait(self._check_every):
            now = time.monotonic()
            stalled = now - self._last_tick > self._stall_after
            if stalled and any(deadline < now for deadline in self._deadlines.values()):
                os.kill(os.getpid(), signal.SIGUSR1)

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        # Runs in the main thread, between two bytecodes of whatever is blocking the loop.
        if self._loop is None or not self._loop.is_running():
            return
        try:
            task = asyncio.current_task(self._loop)
        except RuntimeError:
            return
        deadline = self._deadlines.get(task) if task is not None else None
        if deadline is not None and deadline < time.monotonic():
            self._deadlines.pop(task, None)  # type: ignore[arg-type]
            raise JobBlockedLoop("the job blocked the event loop past its timeout")

    def stop(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._thread is not None:
            self._thread.join(timeout=1)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGUSR1, signal.SIG_DFL)
