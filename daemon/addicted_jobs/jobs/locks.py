"""The engine's keyed locks: the one implementation lives in addicted_jobs.keyed_locks, shared
with the catalogue refreshers (which may not import the engine)."""

from addicted_jobs.keyed_locks import KeyedLocks

__all__ = ["KeyedLocks"]
