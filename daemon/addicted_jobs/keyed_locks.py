"""In-memory keyed locks (the original's AsyncKeyedLocker): try-lock and wait-lock per key.

One implementation for the engine's job locks and the catalogue refreshers' try-locks, so it sits
outside both packages. Entries exist only while someone holds or waits for a key, so the registry
never grows with the number of keys ever seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    # Set at each release, then replaced: wait_released() waits for the holder it saw.
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.lock.release()
        self.released.set()
        self.released = asyncio.Event()


class KeyedLocks:
    """Locks by string key, for one event loop: `try_lock` never waits, `lock` does."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        """Keys held or waited for right now."""
        return len(self._entries)

    def held(self, key: str) -> bool:
        """Whether someone holds `key` now."""
        entry = self._entries.get(key)
        return entry is not None and entry.lock.locked()

    async def wait_released(self, key: str) -> None:
        """Return once the current holder of `key` lets go (at once when nobody holds it), without
        taking the key: for a caller that wants the holder's result rather than a turn."""
        entry = self._entries.get(key)
        if entry is not None and entry.lock.locked():
            await entry.released.wait()

    def _enter(self, key: str) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        return entry

    def _leave(self, key: str, entry: _Entry) -> None:
        entry.users -= 1
        if entry.users == 0:
            del self._entries[key]

    @asynccontextmanager
    async def try_lock(self, key: str) -> AsyncIterator[bool]:
        """Yields False at once when the key is held (nothing is taken), True with the lock otherwise."""
        if self.held(key):
            yield False
            return
        entry = self._enter(key)
        await entry.lock.acquire()  # free, so this does not wait
        try:
            yield True
        finally:
            entry.release()
            self._leave(key, entry)

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """Waits for the key; cancellation while waiting leaves no trace."""
        entry = self._enter(key)
        try:
            await entry.lock.acquire()
        except BaseException:
            self._leave(key, entry)
            raise
        try:
            yield
        finally:
            entry.release()
            self._leave(key, entry)
