"""Socket hygiene: file mode, stale and live sockets, size limit, stalled and silent clients,
concurrency, peer credentials in the audit log, and garbage that must change nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from addicted_jobs.control.client import ControlClient, DaemonError
from addicted_jobs.control.server import ControlServer
from addicted_jobs.control.socketfile import ControlSocketError
from tests.support import wait_until
from tests.support.control import Control, exchange, jobs_fingerprint, start_control


def test_socket_file_is_a_0660_socket(control: Control) -> None:
    st_ = control.path.stat()
    assert stat.S_ISSOCK(st_.st_mode) and stat.S_IMODE(st_.st_mode) == 0o660


async def test_stale_socket_is_replaced_and_a_live_one_is_never_taken(
    control: Control, sock_dir: Path
) -> None:
    stale = sock_dir / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(stale))
    dead.close()  # the file stays, nobody listens: what a killed daemon leaves
    server = ControlServer(stale, control.ops.ops())
    await server.start()
    try:
        async with ControlClient(stale) as client:
            assert (await client.call("ping"))["version"] == "test"
    finally:
        await server.stop()
    assert not stale.exists()

    thief = ControlServer(control.path, control.ops.ops())
    with pytest.raises(ControlSocketError, match="another running daemon"):
        await thief.start()
    assert (await control.call("ping"))["version"] == "test"

    plain = sock_dir / "plain.sock"
    plain.write_text("not a socket")
    with pytest.raises(ControlSocketError, match="not a socket"):
        await ControlServer(plain, []).start()
    assert plain.read_text() == "not a socket"


async def test_oversized_line_is_refused_and_a_blob_sized_one_accepted(
    control: Control, sock_dir: Path
) -> None:
    small = await start_control(
        control.engine, sock_dir / "s.sock", control.gate, max_request_bytes=4096
    )
    try:
        before = await jobs_fingerprint(control.pool)
        line = json.dumps(
            {"v": 1, "op": "enqueue", "args": {"name": "blob", "args": {"blob": "x" * 8000}}}
        )
        [reply] = [json.loads(r) for r in await exchange(small.path, line.encode() + b"\n")]
        assert reply["error"]["code"] == "bad_request" and "4096" in reply["error"]["message"]
        [reply] = [json.loads(r) for r in await exchange(small.path, b"y" * 100_000)]
        assert reply["error"]["code"] == "bad_request"
        assert await jobs_fingerprint(control.pool) == before
    finally:
        await small.server.stop()
    blob = "s" * (15 * 1024 * 1024)  # a 16 MiB request line through the default limit
    async with ControlClient(control.path) as client:
        job = await client.call("enqueue", {"name": "blob", "args": {"blob": blob}, "delay": 600})
    assert len((await control.call("job", {"id": job["id"]}))["args"]["blob"]) == len(blob)


async def test_pipelined_requests_are_answered_in_order(control: Control) -> None:
    lines = b"".join(
        json.dumps({"v": 1, "id": i, "op": "ping"}).encode() + b"\n" for i in range(20)
    )
    replies = [json.loads(r) for r in await exchange(control.path, lines)]
    assert [r["id"] for r in replies] == list(range(20)) and all(r["ok"] for r in replies)


async def test_fifty_clients_enqueue_while_silent_and_stalled_clients_are_closed(
    control: Control,
) -> None:
    silent_reader, silent = await asyncio.open_unix_connection(str(control.path))
    stalled_reader, stalled = await asyncio.open_unix_connection(str(control.path))
    stalled.write(b'{"v": 1, "op": "enqueue", "args": {"name": "no')  # and never the rest

    async def client(n: int) -> list[int]:
        async with ControlClient(control.path) as c:
            ids = [
                (await c.call("enqueue", {"name": "noop", "delay": 600}))["id"] for _ in range(10)
            ]
            ids += (await c.call("enqueue", {"name": "noop", "count": 10, "delay": 600}))["ids"]
            return ids

    async with asyncio.timeout(20):
        results = await asyncio.gather(*(client(n) for n in range(50)))
    ids = [i for r in results for i in r]
    assert len(set(ids)) == 1000
    count = await control.pool.fetchval("SELECT count(*) FROM jobs.jobs")
    assert count == 1000
    # Silence ends a connection (idle_timeout_s=0.5), in the middle of a line or between lines.
    async with asyncio.timeout(5):
        assert await stalled_reader.read() == b""
        assert await silent_reader.read() == b""
    assert not control.server._busy and control.server.buffered == 0
    silent.close()
    stalled.close()


async def test_a_full_house_of_silent_clients_never_locks_a_real_client_out(
    control: Control, sock_dir: Path
) -> None:
    full = await start_control(control.engine, sock_dir / "f.sock", control.gate)  # 30 s idle
    try:
        held = [await asyncio.open_unix_connection(str(full.path)) for _ in range(256)]
        await wait_until(lambda: full.server.connections == 256, message="256 connections")
        async with asyncio.timeout(5), ControlClient(full.path) as client:
            assert (await client.call("ping"))["version"] == "test"
        # The oldest silent one made room; the newest are still open.
        async with asyncio.timeout(5):
            assert await held[0][0].read() == b""
        assert not held[-1][0].at_eof()
        for _, writer in held:
            writer.close()
    finally:
        await full.server.stop()


async def test_connection_limit_answers_unavailable_when_every_client_is_busy(
    control: Control, sock_dir: Path
) -> None:
    entered = asyncio.Event()

    async def hold(args: dict[str, object], peer: object) -> dict[str, object]:
        entered.set()
        await control.gate.release.wait()
        return {}

    tight = await start_control(
        control.engine, sock_dir / "t.sock", control.gate, {"hold": hold}, max_connections=1
    )
    try:
        reader, writer = await asyncio.open_unix_connection(str(tight.path))
        writer.write(json.dumps({"v": 1, "id": 1, "op": "hold"}).encode() + b"\n")
        await asyncio.wait_for(entered.wait(), 5)
        [reply] = [json.loads(r) for r in await exchange(tight.path, b"")]
        assert reply["error"]["code"] == "unavailable" and "all busy" in reply["error"]["message"]
        control.gate.release.set()
        assert json.loads(await reader.readline())["ok"] is True
        writer.close()
    finally:
        await tight.server.stop()


async def test_memory_held_for_unfinished_lines_is_bounded_across_clients(
    control: Control, sock_dir: Path
) -> None:
    budget = 8 * 1024 * 1024
    capped = await start_control(
        control.engine,
        sock_dir / "m.sock",
        control.gate,
        max_buffered_bytes=budget,
        idle_timeout_s=2.0,  # the clients not refused are closed by their silence
    )
    try:
        part = b'{"v": 1, "op": "ping", "args": {"pad": "' + b"x" * (1024 * 1024)
        with capture_logs() as logs:
            clients = [await asyncio.open_unix_connection(str(capped.path)) for _ in range(32)]
            for _, writer in clients:  # 32 x 3 MiB of lines that never end
                for _ in range(3):
                    with contextlib.suppress(ConnectionError):
                        writer.write(part)
                        await writer.drain()
            for reader, _ in clients:  # each is refused, or closed by its silence
                with contextlib.suppress(ConnectionError):
                    async with asyncio.timeout(10):
                        await reader.read()
        refused = [e for e in logs if "hold too much memory" in e["event"]]
        assert len(refused) >= 20, "most clients were turned away"
        # At most one read (256 KiB) per connection past the budget, never 32 x 3 MiB.
        assert capped.server.buffered_peak <= budget + 32 * 256 * 1024
        assert capped.server.buffered == 0
        for _, writer in clients:
            writer.close()
        async with ControlClient(capped.path) as client:  # and the daemon still answers
            assert (await client.call("ping"))["version"] == "test"
    finally:
        await capped.server.stop()


async def test_a_reply_over_the_line_limit_is_an_error_not_a_huge_line(
    control: Control, sock_dir: Path
) -> None:
    async def big(args: dict[str, object], peer: object) -> dict[str, object]:
        return {"blob": "x" * (200 * 1024)}

    small = await start_control(
        control.engine, sock_dir / "r.sock", control.gate, {"big": big}, max_reply_bytes=64 * 1024
    )
    try:
        async with ControlClient(small.path) as client:
            with pytest.raises(DaemonError) as refused:
                await client.call("big")
        assert refused.value.code == "unavailable" and "max_reply_bytes" in str(refused.value)
    finally:
        await small.server.stop()


async def test_state_changes_are_logged_with_peer_uid_and_pid(control: Control) -> None:
    with capture_logs() as logs:
        await control.call("pause", {"queue": "default"})
        await control.call("queues")
        with pytest.raises(DaemonError):
            await control.call("enqueue", {"name": "nosuch"})
    audit = [e for e in logs if e["event"] == "control command"]
    assert [(e["op"], e["ok"]) for e in audit] == [("pause", True), ("enqueue", False)]
    assert audit[0]["arg_queue"] == "default" and audit[1]["error"] == "unknown_job"
    for entry in audit:
        assert entry["peer_uid"] == os.getuid() and entry["peer_pid"] == os.getpid()


async def test_stop_lets_a_request_in_progress_finish(control: Control, sock_dir: Path) -> None:
    release = asyncio.Event()

    async def slow(args: dict[str, object], peer: object) -> dict[str, object]:
        await release.wait()
        return {"done": True}

    ctl = await start_control(
        control.engine, sock_dir / "w.sock", control.gate, extra={"slow": slow}
    )
    pending = asyncio.ensure_future(ctl.call("slow"))
    await wait_until(lambda: ctl.server._busy, message="request in progress")
    stopping = asyncio.ensure_future(ctl.server.stop(grace=5.0))
    await asyncio.sleep(0)
    release.set()
    assert await pending == {"done": True}
    await stopping
    assert not ctl.path.exists()


# ---- garbage ------------------------------------------------------------------------------------

ENVELOPE_TYPES = st.one_of(
    st.none(), st.booleans(), st.floats(), st.lists(st.integers(), max_size=3)
)
# Values no integer field accepts, even in pydantic's lax mode (so "5", 5.0 and True are out).
NOT_AN_INT = st.one_of(
    st.text(alphabet="abcxyz -", min_size=1),
    st.floats().filter(lambda f: not f.is_integer()),
    st.lists(st.integers(), max_size=3),
    st.none(),
)
BAD_ID = st.one_of(NOT_AN_INT, st.integers(max_value=0), st.integers(min_value=2**63))
BAD_ARGS = st.one_of(
    st.fixed_dictionaries(
        {"name": st.text(min_size=1).filter(lambda n: n not in {"noop", "uniq", "block", "blob"})}
    ),
    st.fixed_dictionaries(
        {
            "name": st.just("noop"),
            "args": st.fixed_dictionaries(
                {"sleep_ms": st.one_of(NOT_AN_INT, st.integers(max_value=-1))}
            ),
        }
    ),
    st.fixed_dictionaries(
        {"name": st.just("uniq"), "args": st.fixed_dictionaries({"key": NOT_AN_INT})}
    ),
    st.fixed_dictionaries({"id": BAD_ID}),
    st.fixed_dictionaries({"queue": ENVELOPE_TYPES}),
    st.fixed_dictionaries(
        {"jobs": st.lists(st.fixed_dictionaries({"name": ENVELOPE_TYPES}), max_size=3)}
    ),
)
WRONG_TYPES = st.builds(
    lambda op, args: json.dumps({"v": 1, "op": op, "args": args}).encode(),
    st.sampled_from(["enqueue", "retry", "cancel", "pause", "resume", "trigger", "job"]),
    BAD_ARGS,
)
ENVELOPES = st.builds(
    lambda v, op, args: json.dumps({"v": v, "op": op, "args": args}).encode(),
    st.one_of(st.just(1), ENVELOPE_TYPES),
    st.one_of(st.text(max_size=10), ENVELOPE_TYPES),
    st.one_of(ENVELOPE_TYPES, st.text()),
)
LINES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.just(b""),
    st.just(b" \t "),
    st.binary(min_size=5000, max_size=9000),  # over the 4096-byte limit below
    WRONG_TYPES,
    ENVELOPES,
)


async def test_garbage_never_kills_the_server_nor_changes_the_jobs_table(
    control: Control, sock_dir: Path
) -> None:
    await control.call("enqueue", {"name": "noop", "delay": 600})
    small = await start_control(
        control.engine,
        sock_dir / "g.sock",
        control.gate,
        max_request_bytes=4096,
        idle_timeout_s=0.2,
    )
    before = await jobs_fingerprint(control.pool)
    loop = asyncio.get_running_loop()

    def send(data: bytes, ending: str) -> None:
        # Blocking client in a worker thread; the server runs on the test's event loop.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(small.path))
            if ending == "abort":  # partial line, then vanish
                s.sendall(data[: len(data) // 2])
                return
            s.sendall(data.replace(b"\n", b" ") + b"\n")
            if ending == "read":
                reply = s.makefile("rb").readline()
                if reply:
                    body = json.loads(reply)
                    assert body["ok"] is False, (data, body)
                    assert body["error"]["code"] in {
                        "bad_request",
                        "unknown_op",
                        "unknown_job",
                        "invalid_args",
                        "not_found",
                    }, body

    @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=LINES, ending=st.sampled_from(["read", "read", "abort", "hangup"]))
    def garbage(data: bytes, ending: str) -> None:
        sent.append(ending)
        send(data, ending)

    sent: list[str] = []

    try:
        await loop.run_in_executor(None, garbage)
        assert len(sent) >= 200 and {"read", "abort", "hangup"} <= set(sent)
        assert (await small.call("ping"))["version"] == "test"
        assert await jobs_fingerprint(control.pool) == before
    finally:
        await small.server.stop()
