"""Whether a subtitle request should fetch its season from Addic7ed (the decision of spec 3.6,
which the REST search made before enqueuing FetchSubtitlesJob).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from addicted_jobs.catalog.episodes import episode_subtitles
from addicted_jobs.catalog.languages import Culture, culture_for, parse_language
from addicted_jobs.catalog.refresh import season_needs_episode_refresh, show_needs_season_refresh
from addicted_jobs.catalog.seasons import list_seasons
from addicted_jobs.catalog.shows import get_show
from addicted_jobs.settings import RefreshSettings


class ShowNotFound(LookupError):
    def __init__(self, show_id: int) -> None:
        self.show_id = show_id
        super().__init__(f"no show with id {show_id} in the catalogue")


@dataclass(frozen=True, slots=True)
class FetchDecision:
    fetch: bool
    reason: str
    culture: Culture
    matching_subtitles: int


def same_language(a: Culture, b: Culture) -> bool:
    # The override table names some cultures differently from their codes ("Català" is "cat",
    # the code "ca" is "ca"): the same language and English name count as the same culture.
    return a.name == b.name or (a.two_letter, a.english_name) == (b.two_letter, b.english_name)


def subtitle_matches(culture: Culture, language: str, iso_code: str | None) -> bool:
    """A subtitle is in the language if its stored code is the culture's name or its label
    parses to the same culture."""
    if iso_code == culture.name:
        return True
    parsed = culture_for(language)
    return parsed is not None and same_language(parsed, culture)


def _stamp(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "never"


async def decide_fetch(
    pool: asyncpg.Pool,
    settings: RefreshSettings,
    show_id: int,
    season: int,
    episode: int,
    language: str,
    now: datetime | None = None,
) -> FetchDecision:
    """Fetch when the episode has no subtitle in the language and a refresh is due."""
    culture = parse_language(language)
    now = now or datetime.now(UTC)
    show = await get_show(pool, show_id)
    if show is None:
        raise ShowNotFound(show_id)
    known = await episode_subtitles(pool, show_id, season, episode)
    matching = sum(
        1 for s in known or () if subtitle_matches(culture, s.language, s.language_iso_code)
    )

    def no(reason: str) -> FetchDecision:
        return FetchDecision(False, reason, culture, matching)

    if matching:
        return no(f"{matching} {culture.english_name} subtitle(s) already known for this episode")
    if show.addic7ed_id is None:
        return no("the show has no Addic7ed id, so there is nothing to fetch it from")
    missing = (
        "episode not in the catalogue" if known is None else f"no {culture.english_name} subtitle"
    )
    seasons = await list_seasons(pool, show_id)
    current = next((entry for entry in seasons if entry.number == season), None)
    if current is None:
        last = show.last_season_refreshed
        if last is not None and not show_needs_season_refresh(show, settings, now):
            if show.is_completed:
                return no(
                    f"season {season} is not in the season list of this completed show, which "
                    f"is not refreshed again (last refreshed {_stamp(last)})"
                )
            return no(
                f"season {season} is not in the show's season list, refreshed {_stamp(last)}; "
                f"next refresh due after {_stamp(last + settings.season_refresh)}"
            )
        return FetchDecision(True, f"{missing}; the season list is due", culture, matching)
    latest = max(entry.number for entry in seasons)
    if not season_needs_episode_refresh(show, current, latest, settings, now):
        return no(f"season {season} was refreshed {_stamp(current.last_refreshed)}, not due yet")
    return FetchDecision(True, f"{missing}; season {season} is due", culture, matching)
