"""Control protocol v1: one JSON object per line each way, the stable error codes, and the
helpers every operation (engine or domain) uses to validate its arguments and report errors.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self, TypeVar

import pydantic_core
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from addicted_jobs.control.wire import VERSION
from addicted_jobs.jobs import JobState

ErrorCode = Literal[
    "bad_request",
    "unknown_op",
    "unknown_job",
    "invalid_args",
    "not_found",
    "conflict",
    "unavailable",
    "internal",
]
EXPECTED = '{"v": 1, "id": <any>, "op": "<operation>", "args": {...}}'
RequestId = str | int | float | bool | None
M = TypeVar("M", bound=BaseModel)
BIGINT = 2**63 - 1
MAX_BATCH = 100_000
MAX_DELAY_S = 10 * 366 * 86_400


class OpError(Exception):
    """A request that cannot be served; `code` is one of ErrorCode, `message` says what to fix."""

    def __init__(self, code: ErrorCode, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.details = details


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    v: Literal[1]
    id: RequestId = None
    op: str
    args: dict[str, Any] = {}


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, Any]]:
    """Each problem as {field, reason, input}: the field path, pydantic's reason, a short input."""
    out = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        entry = {"field": field or "(top level)", "reason": err["msg"]}
        if err["type"] != "missing":
            entry["input"] = _short(err.get("input"))
        out.append(entry)
    return out


def summarise(details: list[dict[str, Any]]) -> str:
    parts = []
    for d in details:
        given = f" (got {d['input']})" if "input" in d else ""
        parts.append(f"{d['field']}: {d['reason']}{given}")
    return "; ".join(parts)


def parse_args(model: type[M], args: dict[str, Any], op: str) -> M:
    """Validate an operation's arguments against its model; a mismatch (a wrong type, a number
    out of range, a missing or unknown field) is OpError(invalid_args) naming each field."""
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        details = describe_errors(exc, "args")
        fields = ", ".join(model.model_fields)
        raise OpError(
            "invalid_args",
            f"invalid arguments for {op!r}: {summarise(details)}; {op!r} takes {{{fields}}}",
            details,
        ) from None


# Parsed JSON weighs many times its text: 16 MiB of `[{},{},...]` is 5.5 million dicts (about
# 440 MiB, which the allocator keeps afterwards) and a second of event-loop time, all before any
# validation could refuse it. The largest real request, a batch of MAX_BATCH jobs, has about two
# objects and ten values per job; counting bytes (memory speed, no parsing) bounds both. A brace
# or comma inside a string counts too: that over-counts, never under-counts.
MAX_CONTAINERS = 4 * MAX_BATCH + 1_000
MAX_VALUES = 12 * MAX_BATCH + 1_000


def check_weight(line: bytes) -> None:
    """OpError(bad_request) when the line would parse into more objects, arrays or values than
    any real request has (MAX_CONTAINERS, MAX_VALUES), before it is parsed."""
    containers = line.count(b"{") + line.count(b"[")
    if containers > MAX_CONTAINERS:
        raise OpError(
            "bad_request",
            f"the request holds {containers} JSON objects and arrays, more than {MAX_CONTAINERS}; "
            "send smaller batches",
        )
    values = line.count(b",")
    if values > MAX_VALUES:
        raise OpError(
            "bad_request",
            f"the request holds {values} JSON values, more than {MAX_VALUES}; send smaller batches",
        )


def parse_request(line: bytes) -> Request:
    """One request line to a Request; OpError(bad_request) says what is wrong with it."""
    if not line.strip():
        raise OpError("bad_request", f"empty line; expected one JSON object per line: {EXPECTED}")
    check_weight(line)
    try:
        value = pydantic_core.from_json(line)
    except ValueError as exc:
        raise OpError("bad_request", f"not valid JSON ({exc}); expected {EXPECTED}") from None
    if not isinstance(value, dict):
        raise OpError(
            "bad_request",
            f"a request is a JSON object, got a JSON {type(value).__name__}; expected {EXPECTED}",
        )
    if "v" in value and value["v"] != VERSION and isinstance(value["v"], int):
        raise OpError(
            "bad_request",
            f"protocol version {value['v']} is not supported; this daemon speaks v{VERSION}",
        )
    try:
        return Request.model_validate(value)
    except ValidationError as exc:
        details = describe_errors(exc)
        raise OpError(
            "bad_request", f"{summarise(details)}; expected {EXPECTED}", details
        ) from None


def request_id_of(line: bytes) -> RequestId:
    """Best effort: the id of a request that failed validation, so the reply can still carry it."""
    try:
        check_weight(line)  # a line refused for its weight is not parsed here either
        value = pydantic_core.from_json(line)
    except (ValueError, OpError):
        return None
    rid = value.get("id") if isinstance(value, dict) else None
    return rid if isinstance(rid, str | int | float | bool) else None


def encode_ok(request_id: RequestId, result: dict[str, Any]) -> bytes:
    body = {"v": VERSION, "id": request_id, "ok": True, "result": result}
    return pydantic_core.to_json(body, fallback=str) + b"\n"


def encode_error(request_id: RequestId, error: OpError) -> bytes:
    err: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details:
        err["details"] = error.details
    body = {"v": VERSION, "id": request_id, "ok": False, "error": err}
    return pydantic_core.to_json(body, fallback=str) + b"\n"


# ---- arguments of the engine's operations ---------------------------------------------------


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class NoArgs(Args):
    pass


class JobIdArgs(Args):
    id: int = Field(ge=1, le=BIGINT)


class QueueArgs(Args):
    queue: str = Field(min_length=1, max_length=200)


class NameArgs(Args):
    name: str = Field(min_length=1, max_length=200)


class EnqueueItem(Args):
    name: str = Field(min_length=1, max_length=200)
    args: dict[str, Any] = {}
    after: int | None = Field(default=None, ge=1, le=BIGINT)
    delay: float | None = Field(default=None, ge=0, le=MAX_DELAY_S)


class EnqueueArgs(Args):
    """One job (`name`, optionally `count` copies) or a batch (`jobs`), never both."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    args: dict[str, Any] = {}
    after: int | None = Field(default=None, ge=1, le=BIGINT)
    delay: float | None = Field(default=None, ge=0, le=MAX_DELAY_S)
    count: int | None = Field(default=None, ge=1, le=MAX_BATCH)
    jobs: list[EnqueueItem] | None = Field(default=None, min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        if (self.name is None) == (self.jobs is None):
            raise ValueError("give either name (one job) or jobs (a batch)")
        if self.jobs is not None and self.count is not None:
            raise ValueError("count applies to name, not to a jobs batch")
        return self


class JobsArgs(Args):
    state: JobState | None = None
    queue: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=50, ge=1, le=1000)
    before_id: int | None = Field(default=None, ge=1, le=BIGINT)


# ---- filters and bulk actions (issue 17) ------------------------------------------------------


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: without this a filter reached the query and came back as
    # an `internal` CharacterNotInRepertoireError instead of the caller's mistake.
    if "\x00" in value:
        raise ValueError("text cannot contain a NUL character (\\u0000)")
    return value


FilterText = Annotated[str, AfterValidator(_no_nul)]
ArgValue = FilterText | int | float | bool | None
MAX_BULK = 100_000


class FilterArgs(Args):
    """Which jobs: every field narrows. `args` matches argument values as text (42 == "42");
    `since_s` / `older_than_s` are seconds since creation; `error` is a substring of the last
    error, case-insensitive."""

    state: JobState | None = None
    queue: FilterText | None = Field(default=None, max_length=200)
    name: FilterText | None = Field(default=None, max_length=200)
    args: dict[FilterText, ArgValue] = Field(default_factory=dict, max_length=20)
    since_s: float | None = Field(default=None, gt=0, le=MAX_DELAY_S)
    older_than_s: float | None = Field(default=None, ge=0, le=MAX_DELAY_S)
    error: FilterText | None = Field(default=None, min_length=1, max_length=500)


class FindArgs(FilterArgs):
    limit: int = Field(default=50, ge=1, le=1000)
    before_id: int | None = Field(default=None, ge=1, le=BIGINT)


class BulkArgs(FilterArgs):
    """A bulk retry/cancel/delete: at least one filter, `dry_run` counts and samples only,
    `limit` bounds the jobs one request changes."""

    dry_run: bool = False
    limit: int = Field(default=10_000, ge=1, le=MAX_BULK)
    sample: int = Field(default=10, ge=0, le=100)

    @model_validator(mode="after")
    def _some_filter(self) -> Self:
        if not any(
            v not in (None, {})
            for v in (
                self.state,
                self.queue,
                self.name,
                self.args,
                self.since_s,
                self.older_than_s,
                self.error,
            )
        ):
            raise ValueError(
                "a bulk action needs at least one filter (state, queue, name, args, since_s, "
                "older_than_s, error)"
            )
        return self
