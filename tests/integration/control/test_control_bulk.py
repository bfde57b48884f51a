"""Finding jobs by filter and acting on many (issue 17), through the command line over a real
socket: --arg/--since/--error filters, unknown names listed, running time since start, delete,
bulk retry/cancel/delete with --dry-run, and one audit line per affected set."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from addicted_jobs import cli
from tests.support import wait_until
from tests.support.control import Control


@pytest.fixture(autouse=True)
def _logs_off_stdout() -> Iterator[None]:
    # The daemon side runs in this process: its log lines must not mix with the CLI's output.
    with structlog.testing.capture_logs():
        yield


async def run_cli(
    ctl: Control, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str, str]:
    """The real command line against the test's socket, in a thread (it runs its own loop)."""
    code = await asyncio.to_thread(cli.main, [*argv, "--socket", str(ctl.path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def as_json(ctl: Control, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = await run_cli(ctl, capsys, *argv, "--json")
    assert code == 0, out + err
    return json.loads(out)


async def states(ctl: Control) -> dict[int, str]:
    rows = await ctl.pool.fetch("SELECT id, state FROM jobs.jobs")
    return {r["id"]: r["state"] for r in rows}


async def failed_noops(ctl: Control, n: int) -> list[int]:
    ids = [
        (await ctl.call("enqueue", {"name": "noop", "args": {"fail": True}}))["id"]
        for _ in range(n)
    ]

    async def all_failed() -> bool:
        current = await states(ctl)
        return all(current[i] == "failed" for i in ids)

    await wait_until(all_failed, message=f"{n} failing noops failed")
    return ids


async def test_jobs_filters_by_argument_age_and_error_text(
    control: Control, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in range(1, 6):
        await control.call("enqueue", {"name": "uniq", "args": {"key": key}, "delay": 600})
    failed = await failed_noops(control, 2)
    found = await as_json(control, capsys, "jobs", "--arg", "key=3")
    assert [j["args"] for j in found["jobs"]] == [{"key": 3}]
    assert len((await as_json(control, capsys, "jobs", "--since", "1h"))["jobs"]) == 7
    await control.pool.execute(
        "UPDATE jobs.jobs SET created_at = now() - interval '2 hours' WHERE id = $1", failed[0]
    )
    recent = await as_json(control, capsys, "jobs", "--since", "1h", "--name", "noop")
    assert [j["id"] for j in recent["jobs"]] == [failed[1]]
    by_error = await as_json(control, capsys, "jobs", "--error", "ASKED TO FAIL")
    assert sorted(j["id"] for j in by_error["jobs"]) == sorted(failed)
    code, _, err = await run_cli(control, capsys, "jobs", "--since", "soon")
    assert code == 2 and "PT12H" in err


async def test_unknown_queue_name_or_state_is_an_error_listing_the_known_ones(
    control: Control, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await run_cli(control, capsys, "jobs", "--queue", "fetch_subtitles")
    assert code == 1 and "no queue 'fetch_subtitles'; known queues: default, slow" in err
    code, _, err = await run_cli(control, capsys, "jobs", "--name", "nope")
    assert code == 1 and "known job types: blob, block, noop, uniq" in err
    code, _, err = await run_cli(control, capsys, "jobs", "--state", "done")
    assert code == 1 and "'succeeded'" in err and "'failed'" in err


async def test_running_jobs_show_time_since_start_and_succeeded_jobs_no_old_error(
    control: Control, capsys: pytest.CaptureFixture[str]
) -> None:
    blocked = (await control.call("enqueue", {"name": "block", "args": {"key": 1}}))["id"]
    await wait_until(lambda: control.gate.started == 1, message="the block job runs")
    # Created long ago, started just now: RUNNING counts from the start, AGE from creation.
    await control.pool.execute(
        "UPDATE jobs.jobs SET created_at = now() - interval '3 hours' WHERE id = $1", blocked
    )
    code, out, _ = await run_cli(control, capsys, "jobs", "--state", "running")
    assert code == 0
    header, row = out.splitlines()[:2]
    assert "RUNNING" in header and "3h00m" in row
    running_cell = row[header.index("RUNNING") :].split()[0]
    assert running_cell.endswith("s") and not running_cell.startswith("3h")

    done = (await control.call("enqueue", {"name": "noop"}))["id"]
    await wait_until(lambda: _state_is(control, done, "succeeded"), message="noop succeeded")
    await control.pool.execute(
        "UPDATE jobs.jobs SET last_error = 'TimeoutError: attempt 1' WHERE id = $1", done
    )
    listed = await as_json(control, capsys, "jobs", "--name", "noop")
    assert listed["jobs"][0]["last_error"] is None
    control.gate.release.set()


async def _state_is(ctl: Control, job_id: int, state: str) -> bool:
    return bool((await states(ctl)).get(job_id) == state)


async def test_delete_discards_a_finished_job_and_refuses_a_waiting_one(
    control: Control, capsys: pytest.CaptureFixture[str]
) -> None:
    [failed] = await failed_noops(control, 1)
    code, out, _ = await run_cli(control, capsys, "delete", str(failed))
    assert code == 0 and out.strip() == f"job {failed}: failed -> discarded"
    assert failed not in await states(control)
    waiting = (await control.call("enqueue", {"name": "noop", "delay": 600}))["id"]
    code, _, err = await run_cli(control, capsys, "delete", str(waiting))
    assert code == 1 and "is scheduled" in err and "cancel it first" in err
    assert (await states(control))[waiting] == "scheduled"


async def test_bulk_retry_dry_run_first_then_acts_with_one_audit_line(
    control: Control, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = await failed_noops(control, 12)
    other = (await control.call("enqueue", {"name": "noop", "delay": 600}))["id"]
    before = await states(control)
    code, out, _ = await run_cli(control, capsys, "retry", "--state", "failed", "--dry-run")
    assert code == 0 and out.startswith("12 jobs match retry (dry run: nothing changed)")
    assert out.count("\n  #") == 10 and "... and 2 more" in out
    assert await states(control) == before
    # With --limit, the dry run says how many the real run would change and samples only those.
    code, out, _ = await run_cli(
        control, capsys, "retry", "--state", "failed", "--dry-run", "--limit", "3"
    )
    assert code == 0 and out.startswith("12 jobs match retry (dry run, 3 would change within")
    assert out.count("\n  #") == 3
    assert await states(control) == before
    with structlog.testing.capture_logs() as logs:
        result = await as_json(control, capsys, "retry", "--name", "noop", "--error", "asked to")
    assert result["changed"] == 12 and result["remaining"] == 0
    audit = [e for e in logs if e["event"] == "bulk action"]
    assert len(audit) == 1 and audit[0]["changed"] == 12 and audit[0]["action"] == "retry"
    assert audit[0]["first_id"] == min(failed) and audit[0]["last_id"] == max(failed)
    assert (await states(control))[other] == "scheduled"  # not failed: not retried
    await wait_until(
        lambda: _all(control, failed, "failed"), message="the retried noops failed again"
    )


async def _all(ctl: Control, ids: list[int], state: str) -> bool:
    current = await states(ctl)
    return all(current[i] == state for i in ids)


async def test_bulk_cancel_and_delete_by_argument_and_age(
    control: Control, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [
        (await control.call("enqueue", {"name": "uniq", "args": {"key": k}, "delay": 600}))["id"]
        for k in (1, 2, 2)
    ]
    assert ids[1] == ids[2]  # the unique key: one job
    cancelled = await as_json(control, capsys, "cancel", "--arg", "key=2")
    assert cancelled["changed"] == 1
    assert (await states(control))[ids[0]] == "scheduled"
    assert (await states(control))[ids[1]] == "deleted"
    code, _, err = await run_cli(control, capsys, "delete", "--state", "ready")
    assert code == 1 and "delete applies to succeeded, failed, deleted" in err
    code, _, err = await run_cli(control, capsys, "delete", "--dry-run")
    assert code == 2 and "give a job ID, or filters" in err
    none_old = await as_json(control, capsys, "delete", "--state", "deleted", "--older-than", "1h")
    assert none_old["matched"] == 0
    await control.pool.execute(
        "UPDATE jobs.jobs SET created_at = now() - interval '2 days' WHERE id = $1", ids[1]
    )
    gone = await as_json(control, capsys, "delete", "--state", "deleted", "--older-than", "1d")
    assert gone["changed"] == 1 and ids[1] not in await states(control)


async def test_job_types_lists_each_job_with_its_policies(
    control: Control, capsys: pytest.CaptureFixture[str]
) -> None:
    types = {t["name"]: t for t in (await as_json(control, capsys, "job-types"))["job_types"]}
    assert sorted(types) == ["blob", "block", "noop", "uniq"]
    assert types["uniq"]["unique_key"] == "{key}" and types["uniq"]["unique_ttl_s"] == 86400
    assert types["noop"]["retries"] == 0 and types["noop"]["unique_key"] is None
    assert types["noop"]["args"] == [
        {"name": "sleep_ms", "type": "int", "required": False, "default": 0},
        {"name": "fail", "type": "bool", "required": False, "default": False},
    ]
    code, out, _ = await run_cli(control, capsys, "job-types")
    assert code == 0
    assert (
        "uniq\n  queue       default\n  args        key: int\n  unique key  {key} (TTL 1d00h)"
        in out
    )
    assert "retries     none" in out
