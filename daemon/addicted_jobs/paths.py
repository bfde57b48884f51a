"""Where the daemon's files and control socket are: the defaults and the order that picks them, in
one place that imports only the standard library. settings.py builds its values with these rules,
and the command line (cli/) finds the socket with the same ones without loading the settings
(pydantic-settings costs ~0.3 s, most of a `ping`).

Paths are plain strings here, joined with os.path: pathlib costs ~4 ms to import, a tenth of the
whole `ping` command's budget (issue 16); settings.py turns them into Path values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import StrPath

DEFAULT_CONFIG_PATH = "/etc/addicted-jobs/config.toml"
ENV_PREFIX = "ADDICTED_JOBS_"
SOCKET_NAME = "control.sock"


class Unresolved(Exception):
    """The light rules cannot decide (a config file that does not parse, a value of the wrong
    type): the caller asks the full settings, which say precisely what is wrong."""


def config_path(explicit: StrPath | None) -> StrPath | None:
    """`explicit`, else DEFAULT_CONFIG_PATH when it exists, else None (defaults only)."""
    if explicit is not None:
        return explicit
    return DEFAULT_CONFIG_PATH if os.path.exists(DEFAULT_CONFIG_PATH) else None


def default_state_dir() -> str:
    """systemd's StateDirectory= (STATE_DIRECTORY), else .state in the working directory."""
    env = os.environ.get("STATE_DIRECTORY")
    return env.split(":")[0] if env else os.path.abspath(".state")


def socket_path(control_socket: StrPath | None, state_dir: StrPath) -> str:
    """`[control] socket`, else $RUNTIME_DIRECTORY/control.sock (systemd's RuntimeDirectory=),
    else <state dir>/control.sock."""
    if control_socket is not None:
        return os.fspath(control_socket)
    runtime = os.environ.get("RUNTIME_DIRECTORY")
    if runtime:
        return os.path.join(runtime.split(":")[0], SOCKET_NAME)
    return os.path.join(state_dir, SOCKET_NAME)


def environment_value(name: str) -> str | None:
    """The variable `name` as the settings read it: any letter case (pydantic-settings matches
    names ignoring case), an empty value counting as unset (the settings ignore empty ones)."""
    value = os.environ.get(name)
    if value is None:
        wanted = name.upper()
        value = next((v for k, v in os.environ.items() if k.upper() == wanted), None)
    return value or None


def _setting(data: Mapping[str, object], section: str, key: str) -> str | None:
    """A path setting as the settings read it: the environment wins over the file."""
    env = environment_value(f"{ENV_PREFIX}{section.upper()}__{key.upper()}")
    if env:
        return env
    table = data.get(section, {})
    if not isinstance(table, dict):
        raise Unresolved(f"[{section}] is not a table")
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise Unresolved(f"[{section}] {key} is not a path")
    return value


def daemon_socket(config: StrPath | None) -> str:
    """The socket the daemon started with `config` (or the default config file) listens on, by
    the rules above, reading the file as TOML only. Raises Unresolved when it cannot tell."""
    path = config_path(config)
    data: Mapping[str, object] = {}
    if path is not None:
        import tomllib  # only with a config file: ~3 ms of every command otherwise

        try:
            with open(path, encoding="utf-8") as file:
                data = tomllib.loads(file.read())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise Unresolved(str(exc)) from exc
    state_dir = _setting(data, "state", "dir") or default_state_dir()
    return socket_path(_setting(data, "control", "socket"), state_dir)
