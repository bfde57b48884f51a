"""Everything in this folder runs the daemon (and often the command line) as processes: each test
here carries the `acceptance` marker, so `pytest -m "not acceptance"` leaves the folder out."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A conftest's collection hook sees every item of the session, not only this folder's.
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.acceptance)
