"""The original system's schema as the import knows it (spec 9.1): which tables and columns it
needs, which it knowingly leaves out, and which of our tables and columns each one fills.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

# The original's timestamps, on every BaseEntity table.
_STAMPS = (("created_at", "CreatedAt"), ("updated_at", "UpdatedAt"))


@dataclass(frozen=True)
class TableMap:
    """One source table copied into one of ours, row for row, keeping its "Id".

    `columns` pairs our column with the source's; `parent` is (our table, our column) a row needs
    to exist before it can be copied (its foreign key); `accepts` is the SQL condition on a staged
    row `s` that our table's CHECK constraints hold (rows failing it are refused and counted)."""

    source: str
    target: str
    columns: tuple[tuple[str, str], ...]
    parent: tuple[str, str] | None = None
    accepts: str | None = None

    @property
    def source_columns(self) -> list[str]:
        return [src for _, src in self.columns]

    @property
    def target_columns(self) -> list[str]:
        return [dst for dst, _ in self.columns]


# In copy order: a parent always before its children.
TABLES: tuple[TableMap, ...] = (
    TableMap(
        "TvShows",
        "tv_shows",
        (
            ("id", "Id"),
            ("unique_id", "UniqueId"),
            ("external_id", "ExternalId"),
            ("name", "Name"),
            ("last_updated", "LastUpdated"),
            ("last_season_refreshed", "LastSeasonRefreshed"),
            ("discovered", "Discovered"),
            ("priority", "Priority"),
            ("tmdb_id", "TmdbId"),
            ("tvdb_id", "TvdbId"),
            ("is_completed", "IsCompleted"),
            ("type", "Type"),
            ("source", "Source"),
            *_STAMPS,
        ),
    ),
    TableMap(
        "Seasons",
        "seasons",
        (
            ("id", "Id"),
            ("tv_show_id", "TvShowId"),
            ("number", "Number"),
            ("last_refreshed", "LastRefreshed"),
            *_STAMPS,
        ),
        parent=("tv_shows", "tv_show_id"),
    ),
    TableMap(
        "Episodes",
        "episodes",
        (
            ("id", "Id"),
            ("tv_show_id", "TvShowId"),
            ("season", "Season"),
            ("number", "Number"),
            ("title", "Title"),
            ("discovered", "Discovered"),
            *_STAMPS,
        ),
        parent=("tv_shows", "tv_show_id"),
    ),
    TableMap(
        "Subtitles",
        "subtitles",
        (
            ("id", "Id"),
            ("episode_id", "EpisodeId"),
            ("scene", "Scene"),
            ("version", "Version"),
            ("completed", "Completed"),
            ("completion_pct", "CompletionPct"),
            ("hearing_impaired", "HearingImpaired"),
            ("corrected", "Corrected"),
            ("hd", "HD"),
            ("qualities", "Qualities"),
            ("release", "Release"),
            ("download_uri", "DownloadUri"),
            ("language", "Language"),
            ("language_iso_code", "LanguageIsoCode"),
            ("storage_path", "StoragePath"),
            ("stored_at", "StoredAt"),
            ("unique_id", "UniqueId"),
            ("discovered", "Discovered"),
            ("download_count", "DownloadCount"),
            ("source", "Source"),
            ("external_id", "ExternalId"),
            *_STAMPS,
        ),
        parent=("episodes", "episode_id"),
    ),
    TableMap(
        "ShowExternalIds",
        "show_external_ids",
        (
            ("id", "Id"),
            ("tv_show_id", "TvShowId"),
            ("source", "Source"),
            ("external_id", "ExternalId"),
            *_STAMPS,
        ),
        parent=("tv_shows", "tv_show_id"),
    ),
    TableMap(
        "EpisodeExternalIds",
        "episode_external_ids",
        (
            ("id", "Id"),
            ("episode_id", "EpisodeId"),
            ("source", "Source"),
            ("external_id", "ExternalId"),
            *_STAMPS,
        ),
        parent=("episodes", "episode_id"),
    ),
    TableMap(
        "AddictedUserCredentials",
        "addicted_user_credentials",
        (
            ("id", "Id"),
            ("cookie", "Cookie"),
            ("usage", "Usage"),
            ("download_usage", "DownloadUsage"),
            ("last_usage", "LastUsage"),
            ("download_exceeded_date", "DownloadExceededDate"),
            *_STAMPS,
        ),
        # As migration 031's constraint: a cookie is an HTTP header value (no CR, LF, NUL...).
        accepts="s.cookie !~ '[[:cntrl:]]' AND length(s.cookie) BETWEEN 1 AND 8192",
    ),
)

# Keyed by uuid, a handful of rows: copied apart from the id-ordered tables (run.py).
MIGRATIONS_TABLE = "OneTimeMigrationRelease"
MIGRATION_COLUMNS = ("Id", "MigrationType", "State", "CreatedAt", "UpdatedAt")

# Known, present in recent deployments, and not imported: the daemon has no season packs and no
# SuperSubtitles provider. Named in the output so nothing is left out silently.
OPTIONAL_TABLES = ("SeasonPackSubtitles", "SeasonPackEntries", "SuperSubtitlesState")


class UnrecognisedSource(Exception):
    """The source database lacks tables or columns the import needs (one line names them)."""


def required_columns() -> dict[str, tuple[str, ...]]:
    """Every source table the import reads, with the columns it needs."""
    needed = {t.source: tuple(t.source_columns) for t in TABLES}
    needed[MIGRATIONS_TABLE] = MIGRATION_COLUMNS
    return needed


async def check_source(conn: asyncpg.Connection) -> list[str]:
    """Refuse a source whose schema is not the original's; return the optional tables present
    (skipped). Raises UnrecognisedSource naming every missing table and column, on one line."""
    rows = await conn.fetch(
        """SELECT table_name, column_name FROM information_schema.columns
           WHERE table_schema = current_schema()"""
    )
    present: dict[str, set[str]] = {}
    for row in rows:
        present.setdefault(row["table_name"], set()).add(row["column_name"])
    problems: list[str] = []
    for table, columns in required_columns().items():
        if table not in present:
            problems.append(f'table "{table}" is missing')
            continue
        missing = [c for c in columns if c not in present[table]]
        if missing:
            names = ", ".join(f'"{c}"' for c in missing)
            problems.append(
                f'table "{table}" lacks column{"s" if len(missing) > 1 else ""} {names}'
            )
    if problems:
        schema = await conn.fetchval("SELECT current_schema()")
        raise UnrecognisedSource(
            f"not an AddictedProxy database (schema {schema}): " + "; ".join(problems)
        )
    return [t for t in OPTIONAL_TABLES if t in present]
