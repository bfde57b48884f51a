"""The `request-subtitles` operation's body and arguments: apply the search's decision (spec 3.6)
and enqueue fetch_subtitles only when a refresh is due, saying why when nothing was enqueued.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from addicted_jobs.catalog.languages import known_language
from addicted_jobs.control.op import Fault, Peer, op
from addicted_jobs.control.protocol import BIGINT
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
    # With the first request: the search loads most of the catalogue and the parsed upstream
    # records, which a daemon nobody asks for subtitles never needs.
    from addicted_jobs.catalog.search import decide_fetch

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


INT4 = 2**31 - 1  # episodes.season and episodes.number are int columns


class RequestSubtitlesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    show_id: int = Field(ge=1, le=BIGINT)
    season: int = Field(ge=0, le=INT4)
    episode: int = Field(ge=0, le=INT4)
    language: str

    @field_validator("language")
    @classmethod
    def _known(cls, value: str) -> str:
        return known_language(value)  # UnknownLanguage is a ValueError: pydantic reports it


class CatalogueOps:
    """`request-subtitles`, with the catalogue's resources and the engine's enqueue."""

    def __init__(self, resources: Resources, enqueue: Enqueue) -> None:
        self.resources = resources
        self.enqueue = enqueue

    @op(
        "request-subtitles",
        RequestSubtitlesArgs,
        audit=("show_id", "season", "episode", "language"),
        # ShowNotFound is a LookupError; UnknownLanguage a ValueError.
        errors={LookupError: Fault("not_found"), ValueError: Fault("invalid_args")},
    )
    async def request_subtitles(self, args: RequestSubtitlesArgs, peer: Peer) -> dict[str, Any]:
        return await request_subtitles(
            self.resources, self.enqueue, args.show_id, args.season, args.episode, args.language
        )
