"""Where the daemon's files and control socket are: the defaults and the order that picks them, in
one place that imports only the standard library. settings.py builds its values with these rules,
and the command line (cli/) finds the socket with the same ones without loading the settings
(pydantic-settings costs ~0.3 s, most of a `ping`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_CONFIG_PATH = Path("/etc/addicted-jobs/config.toml")
ENV_PREFIX = "ADDICTED_JOBS_"
SOCKET_NAME = "control.sock"


class Unresolved(Exception):
    """The light rules cannot decide (a config file that does not parse, a value of the wrong
    type): the caller asks the full settings, which say precisely what is wrong."""


def config_path(explicit: Path | None) -> Path | None:
    """`explicit`, else DEFAULT_CONFIG_PATH when it exists, else None (defaults only)."""
    if explicit is not None:
        return explicit
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def default_state_dir() -> Path:
    """systemd's StateDirectory= (STATE_DIRECTORY), else .state in the working directory."""
    env = os.environ.get("STATE_DIRECTORY")
    return Path(env.split(":")[0]) if env else Path(".state").absolute()


def socket_path(control_socket: Path | None, state_dir: Path) -> Path:
    """`[control] socket`, else $RUNTIME_DIRECTORY/control.sock (systemd's RuntimeDirectory=),
    else <state dir>/control.sock."""
    if control_socket is not None:
        return control_socket
    runtime = os.environ.get("RUNTIME_DIRECTORY")
    if runtime:
        return Path(runtime.split(":")[0]) / SOCKET_NAME
    return state_dir / SOCKET_NAME


def _setting(data: Mapping[str, object], section: str, key: str) -> Path | None:
    """A path setting as the settings read it: the environment wins over the file."""
    env = os.environ.get(f"{ENV_PREFIX}{section.upper()}__{key.upper()}")
    if env:
        return Path(env)
    table = data.get(section, {})
    if not isinstance(table, dict):
        raise Unresolved(f"[{section}] is not a table")
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise Unresolved(f"[{section}] {key} is not a path")
    return Path(value)


def daemon_socket(config: Path | None) -> Path:
    """The socket the daemon started with `config` (or the default config file) listens on, by
    the rules above, reading the file as TOML only. Raises Unresolved when it cannot tell."""
    path = config_path(config)
    data: Mapping[str, object] = {}
    if path is not None:
        import tomllib  # only with a config file: ~3 ms of every command otherwise

        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise Unresolved(str(exc)) from exc
    state_dir = _setting(data, "state", "dir") or default_state_dir()
    return socket_path(_setting(data, "control", "socket"), state_dir)
