"""Where the tests find the repository and the read-only ../shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root (pyproject.toml, migrations/, systemd/)."""

SHARED = ROOT.parent / "shared"
"""../shared beside the repository: real pages and objects, not on every machine."""


def shared_path(*parts: str) -> Path:
    """A file of ../shared (read-only fixtures); skips the test cleanly when it is not there."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available (../shared is absent on this machine)")
    return path
