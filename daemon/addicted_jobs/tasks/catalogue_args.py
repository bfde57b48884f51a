"""The catalogue jobs' arguments (spec 1.3-1.11), apart from their specs (tasks/catalogue.py) and
handlers (tasks/catalogue_jobs.py), which both use them: the handlers load later, on their first
job, and import nothing back from the specs.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from addicted_jobs.catalog.languages import known_language


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class ShowArgs(_Args):
    show_id: int = Field(ge=1)


class CompletedArgs(_Args):
    completed: bool


class FetchSubtitlesArgs(_Args):
    show_id: int = Field(ge=1)
    season: int = Field(ge=0)
    episode: int = Field(ge=0)
    language: str  # a culture name ("en", "pt-BR") or any label the culture parser knows
    file_name: str | None = Field(default=None, max_length=1000)

    @field_validator("file_name")
    @classmethod
    def _printable_file_name(cls, value: str | None) -> str | None:
        # A NUL cannot be stored in the job's jsonb arguments: refused here as invalid_args, not
        # by PostgreSQL as an internal error.
        if value is not None and "\x00" in value:
            raise ValueError("a file name cannot contain a NUL character")
        return value

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        return known_language(value)
