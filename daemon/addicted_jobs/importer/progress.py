"""What the operator sees while the import runs: on a terminal a progress bar per table (rows,
rows/s, ETA, from tqdm); otherwise (a pipe, the journal) a plain line per table at most every
few seconds, and one when it ends.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

PLAIN_EVERY_S = 5.0


class Progress:
    """One table at a time: start(table, total), advance(rows) per batch, finish()."""

    def __init__(self, out: TextIO | None = None, *, bar: bool | None = None) -> None:
        self.out = out or sys.stderr
        self.bar = self.out.isatty() if bar is None else bar
        self._tqdm: Any = None
        self._table, self._total, self._done = "", 0, 0
        self._started = self._printed = 0.0

    def start(self, table: str, total: int, done: int = 0) -> None:
        """A table begins; `done` rows were copied by an earlier run (resumed)."""
        self._table, self._total, self._done = table, total, done
        self._started = self._printed = time.monotonic()
        self._base = done
        if self.bar:
            self._tqdm = tqdm(
                total=total,
                initial=done,
                desc=f"{table:<24}",
                unit=" rows",
                unit_scale=True,
                file=self.out,
                dynamic_ncols=True,
                leave=True,
            )

    def advance(self, rows: int) -> None:
        self._done += rows
        if self._tqdm is not None:
            self._tqdm.update(rows)
        elif time.monotonic() - self._printed >= PLAIN_EVERY_S:
            self._line()

    def finish(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
        else:
            self._line()

    def note(self, text: str) -> None:
        """A line of its own, which the bar does not overwrite."""
        if self._tqdm is not None:
            self._tqdm.write(text, file=self.out)
        else:
            print(text, file=self.out, flush=True)

    def _line(self) -> None:
        self._printed = now = time.monotonic()
        elapsed = max(now - self._started, 1e-9)
        rate = (self._done - self._base) / elapsed
        left = max(self._total - self._done, 0)
        eta = f"{left / rate:.0f} s" if rate > 0 else "unknown"
        pct = 100.0 * self._done / self._total if self._total else 100.0
        print(
            f"import: {self._table} {self._done}/{self._total} rows ({pct:.1f}%), "
            f"{rate:.0f} rows/s, ETA {eta}",
            file=self.out,
            flush=True,
        )
