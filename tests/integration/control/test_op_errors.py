"""Every socket operation answers the same code for the same fault (issue 16). The table is built
from the daemon's own registry (app.OPERATIONS), so an operation added later is covered without
touching this file: a request line whose `args` is not an object is `bad_request`; an unknown
field, a wrong type, an integer out of range and a missing required field are `invalid_args`
naming the field. Sent to a real daemon over its socket; nothing in its database changes.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel

from addicted_jobs.app import OPERATIONS
from addicted_jobs.control.op import Op
from tests.support.control import exchange

pytestmark = pytest.mark.acceptance

UNKNOWN_FIELD = "zz_not_a_field"
# Tables an operation could write to: the engine's, the catalogue's, credentials and storage.
TABLES = (
    "jobs.jobs",
    "jobs.queues",
    "jobs.recurring",
    "tv_shows",
    "episodes",
    "subtitles",
    "addicted_user_credentials",
    "storage_dictionaries",
)


def _plain(annotation: Any) -> set[Any]:
    """The types an annotation admits, Optional and Annotated taken apart (int | None -> {int})."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _plain(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_plain(a) for a in typing.get_args(annotation))) - {type(None)}
    return {origin or annotation}


def _wrong_type(annotation: Any) -> Any:
    # A list is wrong for every scalar and for a dict; a number is wrong for a list.
    return 5 if list in _plain(annotation) else [1]


def _valid(model: type[BaseModel], name: str) -> Any:
    kinds = _plain(model.model_fields[name].annotation)
    return 1 if int in kinds else "en"


def faults(op: Op) -> list[tuple[str, Any, str, str | None]]:
    """(what, args, expected code, field the reply must name) for each fault `op` can have."""
    fields = op.args.model_fields
    required = [name for name, info in fields.items() if info.is_required()]
    base = {name: _valid(op.args, name) for name in required}
    cases: list[tuple[str, Any, str, str | None]] = [
        ("args not an object", [1, 2], "bad_request", None),
        ("unknown field", {**base, UNKNOWN_FIELD: 1}, "invalid_args", UNKNOWN_FIELD),
    ]
    for name, info in fields.items():
        cases.append(
            (
                f"{name}: wrong type",
                {**base, name: _wrong_type(info.annotation)},
                "invalid_args",
                name,
            )
        )
        if int in _plain(info.annotation) and bool not in _plain(info.annotation):
            cases.append((f"{name}: below range", {**base, name: -1}, "invalid_args", name))
            cases.append((f"{name}: above range", {**base, name: 2**70}, "invalid_args", name))
    for name in required:
        missing = {k: v for k, v in base.items() if k != name}
        cases.append((f"{name}: missing", missing, "invalid_args", name))
    return cases


def _line(op: str, args: Any, n: int) -> bytes:
    return json.dumps({"v": 1, "id": n, "op": op, "args": args}).encode() + b"\n"


async def fingerprint(dsn: str) -> list[Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return [
            [tuple(r) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1")] for t in TABLES
        ]
    finally:
        await conn.close()


def test_the_table_covers_every_kind_of_fault() -> None:
    # The generator finds integers, required fields and lists where the registry has them.
    made = {op.name: {what for what, *_ in faults(op)} for op in OPERATIONS}
    assert {"id: below range", "id: above range", "id: missing"} <= made["credentials-remove"]
    assert {"subtitle_id: above range", "subtitle_id: missing"} <= made["storage-get"]
    assert {"show_id: above range", "language: wrong type"} <= made["request-subtitles"]
    assert "jobs: wrong type" in made["enqueue"]
    assert made["ping"] == {"args not an object", "unknown field"}


async def test_every_operation_answers_the_same_code_for_the_same_fault(
    daemon_factory: Any, db_dsn: str
) -> None:
    daemon = daemon_factory("op-errors", {"database": {"dsn": db_dsn}}).start().wait_ready()
    before = await fingerprint(db_dsn)
    # The daemon serves exactly the registry: no operation escapes the table.
    [line] = await exchange(daemon.socket_path, _line("zz-no-such-op", {}, 0))
    error = json.loads(line)["error"]
    assert error["code"] == "unknown_op"
    served = set(error["message"].split("known operations: ")[1].split(", "))
    assert served == {op.name for op in OPERATIONS}
    wrong: list[str] = []
    for op in OPERATIONS:
        cases = faults(op)
        data = b"".join(_line(op.name, args, n) for n, (_, args, _, _) in enumerate(cases))
        replies = {r["id"]: r for r in map(json.loads, await exchange(daemon.socket_path, data))}
        for n, (what, args, code, field) in enumerate(cases):
            reply = replies.get(n)
            if reply is None or reply["ok"] or reply["error"]["code"] != code:
                wrong.append(f"{op.name} {what} {args!r}: expected {code}, got {reply}")
                continue
            named = [d["field"] for d in reply["error"].get("details") or []]
            if field is not None and not any(f.startswith(f"args.{field}") for f in named):
                wrong.append(f"{op.name} {what}: the reply names {named}, not args.{field}")
    assert not wrong, "\n".join(wrong)
    assert await fingerprint(db_dsn) == before
    assert "control operation failed unexpectedly" not in daemon.log_text()
    assert daemon.stop() == 0
