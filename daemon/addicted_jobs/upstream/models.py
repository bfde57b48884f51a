"""Plain immutable records for what the upstream layer reads from Addic7ed and TMDB.

They carry no database ids: the catalogue turns them into rows. TMDB records keep only the
fields the jobs use, and unknown JSON fields are ignored when they are validated.
"""

from __future__ import annotations

from dataclasses import dataclass

# The largest PostgreSQL `int`: seasons, episode numbers, versions, TMDB and TVDB ids are stored
# in `int` columns, so a larger number from upstream must be refused before it reaches a query.
PG_INT_MAX = 2**31 - 1

# Subtitle quality bit flags, as stored in Subtitles.Qualities.
QUALITY_720P = 4
QUALITY_1080P = 8
# Addic7ed only says "HD"; the original stored it as 720p|1080p.
QUALITY_HD = QUALITY_720P | QUALITY_1080P


@dataclass(frozen=True, slots=True)
class ParsedShow:
    external_id: int
    name: str


@dataclass(frozen=True, slots=True)
class ParsedSubtitle:
    scene: str
    version: int
    completed: bool
    completion_pct: float
    hearing_impaired: bool
    corrected: bool
    qualities: int
    download_uri: str
    language: str
    language_code: str | None
    episode_external_id: str


@dataclass(frozen=True, slots=True)
class ParsedEpisode:
    season: int
    number: int
    title: str
    external_id: str
    subtitles: tuple[ParsedSubtitle, ...]


@dataclass(frozen=True, slots=True)
class DownloadUsage:
    used: int
    total: int

    @property
    def remaining(self) -> int:
        return self.total - self.used

    @property
    def fully_used(self) -> bool:
        return self.remaining <= 0


@dataclass(frozen=True)
class TmdbTvResult:
    id: int
    name: str = ""
    first_air_date: str | None = None
    origin_country: tuple[str, ...] = ()


@dataclass(frozen=True)
class TmdbMovieResult:
    id: int
    title: str = ""
    release_date: str | None = None


@dataclass(frozen=True)
class TmdbTvPage:
    page: int
    total_pages: int = 0
    total_results: int = 0
    results: tuple[TmdbTvResult, ...] = ()


@dataclass(frozen=True)
class TmdbMoviePage:
    page: int
    total_pages: int = 0
    total_results: int = 0
    results: tuple[TmdbMovieResult, ...] = ()


@dataclass(frozen=True)
class TmdbShowDetails:
    id: int
    name: str = ""
    status: str | None = None


@dataclass(frozen=True)
class TmdbMovieDetails:
    id: int
    title: str = ""
    status: str | None = None


@dataclass(frozen=True)
class TmdbExternalIds:
    id: int
    tvdb_id: int | None = None
    imdb_id: str | None = None


@dataclass(frozen=True)
class TmdbFindResult:
    tv_results: tuple[TmdbTvResult, ...] = ()
    movie_results: tuple[TmdbMovieResult, ...] = ()


@dataclass(frozen=True, slots=True)
class ResolvedShow:
    """What the show mapper found on TMDB for one catalogue name."""

    tmdb_id: int
    tvdb_id: int | None
    is_ended: bool


@dataclass(frozen=True, slots=True)
class ResolvedMovie:
    tmdb_id: int
    tvdb_id: int | None
