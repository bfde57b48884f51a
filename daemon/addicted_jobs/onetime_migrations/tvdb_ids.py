"""2023-2-29 PopulateTvDbIdsMigration: fill tv_shows.tvdb_id from TMDB's external ids (tv or movie by
the show's type) for shows that have a TMDB id but no TvDB id, 50 shows per saved batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from addicted_jobs.jobs import MigrationContext, OneTimeMigration

if TYPE_CHECKING:  # the records load with the TMDB client's first answer
    from addicted_jobs.upstream.models import TmdbExternalIds

BATCH = 50
MOVIE = 1

_TODO = "tmdb_id IS NOT NULL AND tvdb_id IS NULL"


class ExternalIdsSource(Protocol):
    async def get_show_external_ids(self, tmdb_id: int) -> TmdbExternalIds | None: ...

    async def get_movie_external_ids(self, tmdb_id: int) -> TmdbExternalIds | None: ...


class PopulateTvDbIdsMigration(OneTimeMigration):
    """Each batch is saved on its own, and only still-missing ids are written: a re-run after a
    crash carries on, and a show TMDB knows no TvDB id for is asked again but never changed."""

    date = (2023, 2, 29)

    def __init__(self, tmdb: ExternalIdsSource | None) -> None:
        self.tmdb = tmdb

    async def execute(self, ctx: MigrationContext) -> None:
        total = await ctx.pool.fetchval(f"SELECT count(*) FROM tv_shows WHERE {_TODO}")
        if total == 0:
            ctx.log.info("no show lacks a TvDB id")
            return
        if self.tmdb is None:
            # Failed, not skipped: it runs again at the next start, once TMDB is configured.
            raise RuntimeError(
                f"{total} shows need a TvDB id but no TMDB client is configured ([tmdb] api_key); "
                "this migration runs again at the next start"
            )
        tmdb = self.tmdb
        after, seen, filled = 0, 0, 0
        while True:
            rows = await ctx.pool.fetch(
                f"""SELECT id, tmdb_id, type FROM tv_shows WHERE {_TODO} AND id > $1
                    ORDER BY id LIMIT $2""",
                after,
                BATCH,
            )
            if not rows:
                break
            ids: list[int] = []
            tvdb_ids: list[int] = []
            for row in rows:
                lookup = (
                    tmdb.get_movie_external_ids
                    if row["type"] == MOVIE
                    else tmdb.get_show_external_ids
                )
                external = await lookup(row["tmdb_id"])
                if external is not None and external.tvdb_id is not None:
                    ids.append(row["id"])
                    tvdb_ids.append(external.tvdb_id)
            if ids:
                await ctx.pool.execute(
                    """UPDATE tv_shows t SET tvdb_id = f.tvdb_id
                       FROM unnest($1::bigint[], $2::int[]) AS f(id, tvdb_id)
                       WHERE t.id = f.id AND t.tvdb_id IS NULL""",
                    ids,
                    tvdb_ids,
                )
            after = rows[-1]["id"]
            seen += len(rows)
            filled += len(ids)
            ctx.progress("tvdb ids", done=seen, total=total, filled=filled)
        ctx.log.info("tvdb ids filled", shows=seen, filled=filled)
