"""One language validator: a fetch_subtitles job and the request-subtitles socket operation refuse
the same bad language with the same words."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from addicted_jobs.tasks.catalogue import FetchSubtitlesArgs
from addicted_jobs.tasks.ops.catalogue import RequestSubtitlesArgs


def _language_error(model: type[BaseModel], language: str) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate({"show_id": 1, "season": 1, "episode": 1, "language": language})
    (error,) = caught.value.errors()
    assert error["loc"] == ("language",)
    return str(error["msg"])


@pytest.mark.parametrize("language", ["Elvish", " Zzyzx ", "e\x00n", ""])
def test_a_job_and_the_socket_operation_refuse_a_language_alike(language: str) -> None:
    job = _language_error(FetchSubtitlesArgs, language)
    op = _language_error(RequestSubtitlesArgs, language)
    assert job == op
    assert f"unknown language {language!r}" in job


@pytest.mark.parametrize("language", [" en ", "pt-BR", "Portuguese (Brazilian)"])
def test_both_keep_a_known_language_without_its_blanks(language: str) -> None:
    args = {"show_id": 1, "season": 1, "episode": 1, "language": language}
    assert FetchSubtitlesArgs.model_validate(args).language == language.strip()
    assert RequestSubtitlesArgs.model_validate(args).language == language.strip()
