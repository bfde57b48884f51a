"""Every control operation over the real socket, and every error code from a real bad request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from addicted_jobs.control.client import DaemonError
from addicted_jobs.control.history import RETRY_NOTE
from addicted_jobs.control.server import Peer
from addicted_jobs.jobs.engine import Engine, EngineConfig
from addicted_jobs.jobs.recurring import RecurringScheduler, build_plan
from addicted_jobs.settings import RecurringSettings
from tests.support import wait_until
from tests.support.control import (
    Control,
    Gate,
    exchange,
    jobs_fingerprint,
    make_registry,
    start_control,
)
from tests.support.engine import EngineFactory


async def error_of(ctl: Control, op: str, args: dict[str, Any] | None = None) -> DaemonError:
    with pytest.raises(DaemonError) as caught:
        await ctl.call(op, args)
    return caught.value


async def state(ctl: Control, job_id: int) -> str:
    return str((await ctl.call("job", {"id": job_id}))["state"])


async def test_ping_reports_version_uptime_and_queue_summary(control: Control) -> None:
    await control.call("enqueue", {"name": "noop", "delay": 3600})
    result = await control.call("ping")
    assert result["version"] == "test" and result["protocol"] == 1
    assert result["uptime_s"] == 1.5 and result["database"] == "ok"
    assert result["queues"]["default"]["scheduled"] == 1


async def test_enqueue_one_job_runs_it(control: Control) -> None:
    result = await control.call("enqueue", {"name": "noop", "args": {"sleep_ms": "2"}})
    assert result["created"] is True and result["state"] == "ready"
    await wait_until(
        lambda: _is(state(control, result["id"]), "succeeded"), message="noop succeeded"
    )
    job = await control.call("job", {"id": result["id"]})
    assert job["args"] == {"sleep_ms": 2, "fail": False} and job["attempt"] == 1


async def _is(value: Any, expected: str) -> bool:
    return bool(await value == expected)


async def test_count_and_batch_each_use_one_enqueue_many_call(
    control: Control, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = control.engine.enqueue_many

    async def counting(requests: Any) -> Any:
        calls.append(len(requests))
        return await original(requests)

    monkeypatch.setattr(control.engine, "enqueue_many", counting)
    copies = await control.call("enqueue", {"name": "noop", "count": 500, "delay": 600})
    assert len(set(copies["ids"])) == 500 and copies["created"] == 500
    batch = await control.call(
        "enqueue",
        {
            "jobs": [
                {"name": "noop"},
                {"name": "uniq", "args": {"key": 1}},
                {"name": "uniq", "args": {"key": 1}},
            ]
        },
    )
    results = batch["results"]
    assert [r["created"] for r in results] == [True, True, False]
    assert results[1]["id"] == results[2]["id"]
    assert calls == [500, 3]


async def test_enqueue_after_and_delay(control: Control) -> None:
    parent = await control.call("enqueue", {"name": "noop", "delay": 3600})
    child = await control.call("enqueue", {"name": "noop", "after": parent["id"]})
    assert parent["state"] == "scheduled" and child["state"] == "awaiting"
    assert (await control.call("job", {"id": child["id"]}))["parent_id"] == parent["id"]


async def test_jobs_filters_newest_first_and_compacts_blobs(control: Control) -> None:
    await control.call("enqueue", {"name": "blob", "args": {"blob": "x" * 5000}, "delay": 600})
    for key in range(3):
        await control.call("enqueue", {"name": "uniq", "args": {"key": key}, "delay": 600})
    listed = (await control.call("jobs", {"name": "uniq", "limit": 2}))["jobs"]
    assert [j["args"]["key"] for j in listed] == [2, 1]
    older = (await control.call("jobs", {"name": "uniq", "before_id": listed[-1]["id"]}))["jobs"]
    assert [j["args"]["key"] for j in older] == [0]
    blob = (await control.call("jobs", {"name": "blob"}))["jobs"][0]
    assert blob["args"]["blob"] == "<5000 chars>"
    assert (await control.call("job", {"id": blob["id"]}))["args"]["blob"] == "x" * 5000
    assert (
        len((await control.call("jobs", {"state": "scheduled", "queue": "default"}))["jobs"]) == 4
    )
    assert (await control.call("jobs", {"state": "failed"}))["jobs"] == []


async def test_queues_pause_and_resume(control: Control) -> None:
    paused = await control.call("pause", {"queue": "default"})
    assert paused == {"queue": "default", "paused": True}
    job = await control.call("enqueue", {"name": "noop"})
    queues = {q["name"]: q for q in (await control.call("queues"))["queues"]}
    assert queues["default"]["paused"] is True and queues["default"]["concurrency"] == 10
    assert queues["default"]["counts"]["ready"] == 1
    assert queues["default"]["oldest_ready_age_s"] is not None
    assert queues["slow"]["concurrency"] == 4
    assert await state(control, job["id"]) == "ready"
    await control.call("resume", {"queue": "default"})
    await wait_until(lambda: _is(state(control, job["id"]), "succeeded"), message="resumed run")


async def test_retry_and_cancel_with_their_conflicts(control: Control) -> None:
    failing = await control.call("enqueue", {"name": "noop", "args": {"fail": True}})
    await wait_until(lambda: _is(state(control, failing["id"]), "failed"), message="a failure")
    retried = await control.call("retry", {"id": failing["id"]})
    assert retried == {
        "id": failing["id"],
        "previous_state": "failed",
        "state": "ready",
        "continuations_restored": 0,
        "history": RETRY_NOTE,
    }

    # The history is kept: `job` lists both runs in order and the retry in the timeline.
    async def two_runs() -> bool:
        return len((await control.call("job", {"id": failing["id"]}))["attempts"]) == 2

    await wait_until(two_runs, message="the retried run recorded")
    shown = await control.call("job", {"id": failing["id"]})
    runs = [(r["attempt"], r["counted"], r["outcome"]) for r in shown["attempts"]]
    assert runs == [(1, 1, "failed"), (2, 1, "failed")]  # noop fails again: same arguments
    assert all("NoopFailure" in r["error"] for r in shown["attempts"])
    assert [(p["state"], p["note"]) for p in shown["timeline"]][3] == (
        "ready",
        "retried by an operator",
    )
    assert [p["state"] for p in shown["timeline"]] == [
        "ready", "running", "failed", "ready", "running", "failed",
    ]  # fmt: skip

    held = await control.call("enqueue", {"name": "block", "args": {"key": 1}})
    await wait_until(lambda: _is(state(control, held["id"]), "running"), message="block running")
    conflict = await error_of(control, "retry", {"id": held["id"]})
    assert conflict.code == "conflict" and "running" in conflict.message
    cancelled = await control.call("cancel", {"id": held["id"]})
    assert cancelled["state"] == "cancelling"
    await wait_until(lambda: _is(state(control, held["id"]), "deleted"), message="cancelled")

    waiting = await control.call("enqueue", {"name": "noop", "delay": 600})
    assert (await control.call("cancel", {"id": waiting["id"]}))["state"] == "deleted"
    finished = await error_of(control, "cancel", {"id": waiting["id"]})
    assert finished.code == "conflict" and "deleted" in finished.message
    assert (await error_of(control, "retry", {"id": 999_999})).code == "not_found"
    assert (await error_of(control, "cancel", {"id": 999_999})).code == "not_found"


async def test_recurring_trigger_migrations_and_reload(
    make_engine: EngineFactory, sock_dir: Path
) -> None:
    gate = Gate()
    engine = await make_engine(make_registry(gate))
    plan = build_plan({"tick": RecurringSettings(cron="0 3 * * *", job="noop")}, engine.registry)
    ctl = await start_control(engine, sock_dir / "c.sock", gate)
    ctl.ops.admin.scheduler = RecurringScheduler(engine, plan, 60.0)
    problems = ["recurring.x.cron = 'nope': 1 fields", None]

    async def reload() -> str | None:
        return problems.pop(0)

    ctl.ops.admin.reload_config = reload
    try:
        [entry] = (await ctl.call("recurring"))["recurring"]
        assert entry["name"] == "tick" and entry["cron"] == "0 3 * * *"
        assert entry["last_fire"] is None and entry["next_fire"].endswith("03:00:00Z")
        fired = await ctl.call("trigger", {"name": "tick"})
        assert fired["created"] is True
        [entry] = (await ctl.call("recurring"))["recurring"]
        assert entry["last_job_id"] == fired["id"] and entry["last_trigger"] is not None
        assert (await error_of(ctl, "trigger", {"name": "nope"})).code == "not_found"

        schema = (await ctl.call("migrations"))["schema"]
        assert {m["version"]: m["state"] for m in schema}[5] == "applied"
        refused = await error_of(ctl, "reload")
        assert refused.code == "conflict" and "recurring.x.cron" in refused.message
        assert await ctl.call("reload") == {"reloaded": True, "applied": [], "needs_restart": []}
    finally:
        await ctl.server.stop()


# ---- error codes from real bad requests ----------------------------------------------------------


async def test_malformed_requests_are_bad_request_and_bad_arguments_invalid_args(
    control: Control,
) -> None:
    before = await jobs_fingerprint(control.pool)
    cases = {
        b"{not json\n": "not valid JSON",
        b"[1, 2]\n": "JSON list",
        b'{"v": 2, "op": "ping"}\n': "version 2",
        b'{"v": 1, "op": 5}\n': "op",
        b'{"v": 1, "op": "enqueue", "args": []}\n': "args",
        b'{"v": 1, "op": "ping", "extra": 1}\n': "extra",
        b"\n": "empty line",
    }
    for line, hint in cases.items():
        [reply] = [json.loads(r) for r in await exchange(control.path, line)]
        assert reply["ok"] is False and reply["error"]["code"] == "bad_request", line
        assert hint in reply["error"]["message"], (line, reply)
    for op, args, field in [
        ("job", {"id": "seven"}, "args.id"),
        ("job", {}, "args.id"),
        ("jobs", {"state": "lost"}, "args.state"),
        ("enqueue", {"name": "noop", "jobs": [{"name": "noop"}]}, "either name"),
        ("enqueue", {"name": "noop", "delay": -1}, "args.delay"),
        ("cancel", {"id": 2**70}, "args.id"),
    ]:
        err = await error_of(control, op, args)
        assert err.code == "invalid_args" and field in err.message, (op, err.message)
    assert await jobs_fingerprint(control.pool) == before


async def test_each_engine_error_code(control: Control) -> None:
    before = await jobs_fingerprint(control.pool)
    unknown_op = await error_of(control, "frobnicate")
    assert unknown_op.code == "unknown_op" and "enqueue" in unknown_op.message
    unknown_job = await error_of(control, "enqueue", {"name": "nosuch"})
    assert unknown_job.code == "unknown_job" and "noop" in unknown_job.message
    invalid = await error_of(control, "enqueue", {"name": "noop", "args": {"sleep_ms": "soon"}})
    assert invalid.code == "invalid_args"
    assert "sleep_ms" in invalid.message and "valid integer" in invalid.message
    assert invalid.details[0]["field"] == "sleep_ms"
    extra = await error_of(control, "enqueue", {"name": "noop", "args": {"speed": 1}})
    assert extra.code == "invalid_args" and "speed" in extra.message
    batch = await error_of(
        control, "enqueue", {"jobs": [{"name": "noop"}, {"name": "uniq", "args": {}}]}
    )
    assert batch.code == "invalid_args" and batch.message.startswith("jobs[1]: ")
    orphan = await error_of(control, "enqueue", {"name": "noop", "after": 424242})
    assert orphan.code == "not_found" and "424242" in orphan.message
    assert (await error_of(control, "job", {"id": 424242})).code == "not_found"
    missing_queue = await error_of(control, "pause", {"queue": "nosuch"})
    assert missing_queue.code == "not_found" and "default" in missing_queue.message
    assert await jobs_fingerprint(control.pool) == before


async def test_database_outage_is_unavailable_and_a_crashing_op_is_internal(
    control: Control, sock_dir: Path, db_pool: asyncpg.Pool
) -> None:
    # A pool aimed at a port nobody listens on: every query fails like an outage.
    dead = await asyncpg.create_pool("postgresql://postgres@127.0.0.1:9/none", min_size=0)
    engine = Engine(dead, control.engine.registry, EngineConfig(concurrency={"default": 1}))

    async def broken(args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        raise RuntimeError("a bug in a domain operation")

    ctl = await start_control(engine, sock_dir / "d.sock", Gate(), extra={"broken": broken})
    try:
        down = await error_of(ctl, "enqueue", {"name": "noop"})
        assert down.code == "unavailable" and "database" in down.message
        assert (await error_of(ctl, "queues")).code == "unavailable"
        assert (await ctl.call("ping"))["database"].startswith("unavailable")
        bug = await error_of(ctl, "broken")
        assert bug.code == "internal" and "a bug in a domain operation" in bug.message
        assert (await ctl.call("ping"))["version"] == "test"  # still serving
    finally:
        await ctl.server.stop()
        await dead.close()
