"""`addicted-jobs systemd-files DIR`: write the unit, the sysusers file and the example
configuration shipped in the wheel (daemon/addicted_jobs/deploy_files/, see pyproject.toml), with the unit's
ExecStart/ExecReload pointing at this installation's `addicted-jobs`.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

PACKAGED = Path(__file__).resolve().parent / "deploy_files"
CHECKOUT = Path(__file__).resolve().parents[2]  # an editable install reads the repository's
UNIT_BIN = "/usr/bin/addicted-jobs"
FILES = {
    "addicted-jobs.service": (
        "deploy_files/addicted-jobs.service",
        "systemd/addicted-jobs.service",
    ),
    "addicted-jobs.sysusers.conf": (
        "deploy_files/addicted-jobs.sysusers.conf",
        "systemd/addicted-jobs.sysusers.conf",
    ),
    "config.example.toml": ("deploy_files/config.example.toml", "config.example.toml"),
}
NEXT_STEPS = """next, as root:
  install -m 0644 {dir}/addicted-jobs.sysusers.conf /etc/sysusers.d/addicted-jobs.conf
  systemd-sysusers
  install -d -m 0750 -g addicted-jobs /etc/addicted-jobs /etc/addicted-jobs/secrets
  install -m 0640 -g addicted-jobs {dir}/config.example.toml /etc/addicted-jobs/config.toml
  install -m 0644 {dir}/addicted-jobs.service /etc/systemd/system/addicted-jobs.service
  systemctl daemon-reload && systemctl enable --now addicted-jobs"""


class DeployError(Exception):
    """A file that cannot be found or written; the message says which and why."""


class BadBinary(ValueError):
    """A --bin the unit's ExecStart= cannot hold as written; the message says why."""


# systemd splits ExecStart= on whitespace, expands % specifiers and $VARIABLES, and reads quotes
# and backslashes as quoting: a path with any of them would run something else, or nothing.
_UNSAFE_IN_UNIT = re.compile(r"[\s\"'\\%$;]|[^\x21-\x7e\u00a0-\U0010ffff]")


def check_binary(binary: str) -> str:
    """`binary` when ExecStart=/ExecReload= can name it as written: an absolute path with no
    whitespace, quote, backslash, %, $ or ; (BadBinary otherwise)."""
    if not binary.startswith("/"):
        raise BadBinary(f"--bin must be an absolute path (systemd requires one), got {binary!r}")
    bad = _UNSAFE_IN_UNIT.search(binary)
    if bad is not None:
        raise BadBinary(
            f"--bin {binary!r} holds {bad.group()!r}, which systemd's ExecStart= would split, "
            "expand or unquote; install into a path without whitespace, quotes, \\, %, $ or ;"
        )
    return binary


def source(name: str) -> Path:
    """The packaged copy of `name` (a wheel install), else the checkout's (editable install)."""
    packaged, in_checkout = FILES[name]
    for candidate in (PACKAGED.parent / packaged, CHECKOUT / in_checkout):
        if candidate.is_file():
            return candidate
    raise DeployError(f"{name} is not in this installation (looked in {PACKAGED} and {CHECKOUT})")


def default_bin() -> str:
    """This installation's entry point, so the unit runs the version that wrote it."""
    found = shutil.which("addicted-jobs") or str(Path(sys.executable).with_name("addicted-jobs"))
    return str(Path(found).resolve()) if Path(found).exists() else UNIT_BIN


def write_files(directory: Path, binary: str, force: bool = False) -> list[Path]:
    """Write the three files into `directory` (created); DeployError rather than overwrite an
    existing file unless `force`. Returns the paths written."""
    if directory.exists() and not directory.is_dir():
        raise DeployError(f"{directory} is not a directory; give a directory to write into")
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in FILES:
        target = directory / name
        if target.exists() and not force:
            raise DeployError(f"{target} exists; remove it or pass --force")
        text = source(name).read_text(encoding="utf-8")
        if name.endswith(".service"):
            text = text.replace(UNIT_BIN, binary)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written
