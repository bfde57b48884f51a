"""pytest plugin: moto's S3 server in a subprocess on loopback, which a test can kill and restart.

Run as `python -m tests.plugins.s3 --port N --bucket B ...` it is also that subprocess.
"""

from __future__ import annotations

import argparse
import os
import selectors
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

S3_REGION = "us-east-1"
S3_ACCESS_KEY_ID = "testing"
S3_SECRET_ACCESS_KEY = "testing"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
_READY = "READY "


class MotoServer:
    """A moto server process. `stop()` kills it (an outage); `start()` brings it back on the
    same port with the buckets it had (moto keeps no state across processes, objects are lost).
    """

    def __init__(self, log_dir: Path) -> None:
        self.port = 0
        self.buckets: set[str] = set()
        self._log_path = log_dir / f"moto-{uuid.uuid4().hex[:8]}.log"
        self._proc: subprocess.Popen[str] | None = None

    @property
    def endpoint_url(self) -> str:
        assert self.port, "server never started"
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and return once it accepts requests (buckets already created)."""
        if self.running:
            return
        cmd = [sys.executable, "-m", "tests.plugins.s3", "--port", str(self.port)]
        cmd += [f"--bucket={name}" for name in sorted(self.buckets)]
        with self._log_path.open("a") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=_PROJECT_ROOT,
                stdin=subprocess.PIPE,  # the child exits when this closes, even if we die
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        assert proc.stdout is not None
        line = _readline(proc.stdout, timeout)
        if not line.startswith(_READY):
            proc.kill()
            proc.wait()
            tail = self._log_path.read_text()[-2000:]
            raise RuntimeError(f"moto server did not start within {timeout}s: {line!r}\n{tail}")
        self.port = int(line[len(_READY) :])
        self._proc = proc

    def stop(self) -> None:
        """Kill the process outright, as a crash or network cut would look to clients."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    def bytes_read(self) -> int:
        """Bytes the server process has read so far (Linux), to act in the middle of a request."""
        assert self._proc is not None, "server not running"
        for line in Path(f"/proc/{self._proc.pid}/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
        raise RuntimeError("no rchar in /proc/<pid>/io")

    def restart(self) -> None:
        self.stop()
        self.start()

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket now, and again after every restart."""
        import boto3  # type: ignore[import-untyped]

        name = name or f"test-{uuid.uuid4().hex[:16]}"
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=S3_REGION,
            aws_access_key_id=S3_ACCESS_KEY_ID,
            aws_secret_access_key=S3_SECRET_ACCESS_KEY,
        )
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()
        self.buckets.add(name)
        return name


def _readline(stream: Any, timeout: float) -> str:
    # Wait for the child's announcement on its stdout, with a deadline: no polling, no sleep.
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
    return str(stream.readline()).strip()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """The session's shared moto server; prefer `s3_server` unless you need the handle."""
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server(moto_server: MotoServer) -> str:
    """Endpoint URL of the shared moto S3 server (never stopped by tests)."""
    return moto_server.endpoint_url


@pytest.fixture
def s3_bucket(moto_server: MotoServer) -> str:
    """A fresh, empty bucket on the shared server."""
    return moto_server.create_bucket()


@pytest.fixture
def s3_settings(s3_server: str, s3_bucket: str) -> dict[str, Any]:
    """Keyword arguments for S3Storage pointing at a fresh bucket."""
    return {
        "endpoint_url": s3_server,
        "bucket": s3_bucket,
        "region": S3_REGION,
        "access_key_id": S3_ACCESS_KEY_ID,
        "secret_access_key": S3_SECRET_ACCESS_KEY,
    }


@pytest.fixture
def restartable_s3_server(tmp_path: Path) -> Iterator[MotoServer]:
    """A private moto server a test may stop and start (outage tests); killed at teardown."""
    server = MotoServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _serve(port: int, buckets: list[str]) -> None:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    # Created in the backend before the socket opens, so no client ever sees the restarted
    # server without its buckets.
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for name in buckets:
        backend.create_bucket(name, S3_REGION)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print(f"{_READY}{server.get_host_and_port()[1]}", flush=True)
    # Anything printed later must not fill a pipe nobody reads.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdin.read()  # returns when the parent closes stdin or exits
    server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bucket", action="append", default=[])
    args = parser.parse_args()
    _serve(args.port, args.bucket)
