"""The cost of the engine's line per finished job (issue 20: CPU per job), in microseconds per line,
written to a line-buffered file as the daemon's stderr is: through structlog's logger
(`logger.info("job finished", **fields)`, what the engine did before) and through
logs.LineWriter (what it does now), in the JSON and journal formats. Both run in an event loop
that ends a turn every 10 lines (a turn of the engine finishes ~10 jobs at concurrency 10): the
writer's lines of a turn go out in one write, the logger's one write each.

    python bench/log_line.py [--lines 50000] [--repeats 7]

Prints one JSON line per format; each figure is the best of the repeats (the machine is shared:
the best run is the one least disturbed). The file goes to a temporary directory.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from addicted_jobs import logs

PER_TURN = 10
FIELDS = {
    "id": 123456,
    "name": "noop",
    "queue": "default",
    "attempt": 1,
    "duration_ms": 0.05,
    "outcome": "succeeded",
}


def best_us(write: Callable[[], None], lines: int, repeats: int) -> float:
    async def timed() -> float:
        started = time.perf_counter()
        for _turn in range(lines // PER_TURN):
            for _ in range(PER_TURN):
                write()
            await asyncio.sleep(0)  # the turn ends
        return time.perf_counter() - started

    best = min(asyncio.run(timed()) for _ in range(repeats))
    return round(best / (lines // PER_TURN * PER_TURN) * 1e6, 2)


def measure(fmt: str, lines: int, repeats: int, directory: Path) -> dict[str, object]:
    with open(directory / f"{fmt}.log", "w", buffering=1) as stream:
        logs.configure("info", fmt, stream)
        logger = structlog.get_logger("addicted_jobs").bind()
        writer = logs.LineWriter(logger)
        by_logger = best_us(lambda: logger.info("job finished", **FIELDS), lines, repeats)
        by_writer = best_us(lambda: writer("info", "job finished", dict(FIELDS)), lines, repeats)
    return {
        "bench": "log_line",
        "format": fmt,
        "lines": lines,
        "logger_us_per_line": by_logger,
        "line_writer_us_per_line": by_writer,
        "saved_us_per_line": round(by_logger - by_writer, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aj-log-line-") as tmp:
        for fmt in ("json", "journal"):
            print(json.dumps(measure(fmt, args.lines, args.repeats, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
