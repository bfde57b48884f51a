"""The client's half of protocol v1 in the standard library only: the request line, and a reply
line read back into (id, result) or an error. protocol.py holds the server's half (pydantic
models); keeping this apart lets the command line start without loading pydantic (issue 16).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

VERSION = 1


def encode_request(op: str, args: dict[str, Any], request_id: Any) -> bytes:
    """One request line: {"v": 1, "id", "op", "args"} as UTF-8 JSON and a newline."""
    body = {"v": VERSION, "id": request_id, "op": op, "args": args}
    # default=str: a path or another plain value the command line passes is sent as its text.
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode() + b"\n"


class BadReply(ValueError):
    """A reply line that is not protocol v1 (not JSON, or the wrong shape)."""


class Reply(NamedTuple):  # not a dataclass: importing dataclasses costs every command ~2 ms
    """A reply: `result` when ok, else `code`, `message` and `details` of the error."""

    id: Any
    ok: bool
    result: dict[str, Any]
    code: str = ""
    message: str = ""
    details: list[dict[str, Any]] | None = None


def decode_reply(line: bytes) -> Reply:
    """A reply line to a Reply; BadReply says what is wrong with it."""
    try:
        body = json.loads(line)
    except ValueError as exc:
        raise BadReply(f"not JSON: {exc}") from None
    if (
        not isinstance(body, dict)
        or body.get("v") != VERSION
        or not isinstance(body.get("ok"), bool)
    ):
        raise BadReply(f"not a protocol v{VERSION} reply: {line[:200]!r}")
    if body["ok"]:
        result = body.get("result")
        if result is None:
            result = {}
        if not isinstance(result, dict):
            raise BadReply(f"result is a JSON {type(result).__name__}, not an object")
        return Reply(body.get("id"), True, result)
    error = body.get("error")
    if not isinstance(error, dict):
        return Reply(body.get("id"), False, {}, "internal", "error reply without an error body")
    code, message, details = error.get("code"), error.get("message"), error.get("details")
    if not isinstance(code, str) or not isinstance(message, str):
        raise BadReply(f"error without a code and a message: {error!r:.200}")
    if details is not None and not isinstance(details, list):
        raise BadReply("error details are not a list")
    return Reply(body.get("id"), False, {}, code, message, details)
