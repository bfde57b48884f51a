"""DSN arithmetic for the per-test databases."""

from __future__ import annotations


def with_database(dsn: str, database: str) -> str:
    """`dsn` with its database name replaced by `database`, its query string kept."""
    base, _, query = dsn.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{database}" + (f"?{query}" if query else "")
