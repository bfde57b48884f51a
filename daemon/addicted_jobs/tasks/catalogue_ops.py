"""The `request-subtitles` operation: apply the search's decision (spec 3.6) and enqueue
fetch_subtitles only when a refresh is due, saying why when nothing was enqueued. Also the
socket-level entry (raw arguments in, ValidationError for bad ones) and the CLI's text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from addicted_jobs.catalog.search import decide_fetch, parse_language
from addicted_jobs.jobs import EnqueueResult
from addicted_jobs.tasks.resources import Resources

Enqueue = Callable[[str, dict[str, Any]], Awaitable[EnqueueResult]]


async def request_subtitles(
    resources: Resources,
    engine_enqueue: Enqueue,
    show_id: int,
    season: int,
    episode: int,
    language: str,
) -> dict[str, Any]:
    """Answer {"enqueued", "job_id", "reason", "language", "matching_subtitles"}.

    Raises UnknownLanguage (a ValueError) for a language nobody knows and ShowNotFound (a
    LookupError) for a show id that is not in the catalogue.
    """
    if season < 0 or episode < 0:
        raise ValueError(f"season and episode are zero or positive, got {season} and {episode}")
    decision = await decide_fetch(
        resources.pool, resources.refresh, show_id, season, episode, language
    )
    answer: dict[str, Any] = {
        "enqueued": False,
        "job_id": None,
        "reason": decision.reason,
        "language": decision.culture.name,
        "matching_subtitles": decision.matching_subtitles,
    }
    if not decision.fetch:
        return answer
    args = {
        "show_id": show_id,
        "season": season,
        "episode": episode,
        "language": decision.culture.name,
    }
    result = await engine_enqueue("fetch_subtitles", args)
    answer["job_id"] = result.id
    answer["enqueued"] = result.created
    if not result.created:
        # The key is (show, season): another episode or language of this season is on its way.
        answer["reason"] = (
            f"{decision.reason}, but a fetch of season {season} of show {show_id} is already "
            f"queued as job {result.id} ({result.state})"
        )
    return answer


class RequestSubtitlesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    show_id: int = Field(ge=1)
    season: int = Field(ge=0)
    episode: int = Field(ge=0)
    language: str

    @field_validator("language")
    @classmethod
    def _known(cls, value: str) -> str:
        parse_language(value)  # UnknownLanguage is a ValueError: pydantic reports it as such
        return value.strip()


async def request_subtitles_op(
    resources: Resources, engine_enqueue: Enqueue, args: dict[str, Any]
) -> dict[str, Any]:
    """The socket operation: pydantic.ValidationError for bad arguments (invalid_args), and
    ShowNotFound, a LookupError, for an unknown show (not_found)."""
    parsed = RequestSubtitlesArgs.model_validate(args)
    return await request_subtitles(
        resources, engine_enqueue, parsed.show_id, parsed.season, parsed.episode, parsed.language
    )


def render_request_subtitles(result: dict[str, Any]) -> str:
    """One line for the terminal: what happened and why."""
    if result["enqueued"]:
        return f"enqueued fetch_subtitles as job {result['job_id']}: {result['reason']}"
    return f"not enqueued: {result['reason']}"
