"""Command line: `run` starts the daemon; every other command talks to it over the control socket.

Exit codes: 0 ok, 1 the daemon answered with an error, 2 usage error, 3 daemon unreachable,
78 bad configuration. Commands live in a table (command.COMMANDS) that engine.py, jobs.py,
subtitles.py and importer.py fill with @command; run, demo and systemd-files (daemon.py) run in
this process. The client side imports only the control client, the protocol and settings: the
domain and the engine load only for the commands that run them (pyproject's import-linter
contract "The command line is a light client"). A socket command imports only its own module,
and its words go through argparse (parser.py) only when they are more than its plain arguments
and the common options.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING

from addicted_jobs.cli.command import (
    COMMANDS,
    EXIT_DAEMON_ERROR,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    MODULES,
    Command,
    Context,
    Failed,
    UsageError,
    arg,
    command,
    fail,
    load_commands,
    positive_seconds,
    read_common_words,
)
from addicted_jobs.control.client import ControlClient, DaemonError, Unreachable
from addicted_jobs.exit_codes import EX_CONFIG

if TYPE_CHECKING:
    import argparse

    from _typeshed import StrPath

__all__ = [
    "COMMANDS",
    "EXIT_DAEMON_ERROR",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "EX_CONFIG",
    "Command",
    "Context",
    "Failed",
    "UsageError",
    "arg",
    "command",
    "load_commands",
    "main",
    "positive_seconds",
    "resolve_socket",
]

# Where the packaged unit's RuntimeDirectory=addicted-jobs puts the socket. A command run from a
# shell has no $RUNTIME_DIRECTORY, so it looks here when the config names no socket.
UNIT_SOCKET: StrPath = "/run/addicted-jobs/control.sock"


def resolve_socket(ns: argparse.Namespace) -> StrPath:
    """--socket, else [control] socket of --config, else ADDICTED_JOBS_CONTROL__SOCKET, else the
    daemon's default path. A bad config file raises ConfigError (exit 78)."""
    if getattr(ns, "socket", None):
        return str(ns.socket)
    # The settings are imported only when read: they cost ~0.3 s (pydantic-settings), and a
    # socket given by --socket or the environment needs none of it.
    if getattr(ns, "config", None):
        import tomllib

        from addicted_jobs.settings import load_settings

        load_settings(ns.config)  # a broken file is exit 78 even when only the socket is wanted
        # The file's own value: the documented order puts it before the environment.
        with open(ns.config, encoding="utf-8") as file:
            control = tomllib.loads(file.read()).get("control", {})
        if isinstance(control, dict) and control.get("socket"):
            return str(control["socket"])
    from addicted_jobs.paths import Unresolved, daemon_socket, environment_value

    # Named by the environment, it is taken as given (no fallback to the unit's socket below),
    # the variable read as the settings read it (any letter case, empty meaning unset).
    env = environment_value("ADDICTED_JOBS_CONTROL__SOCKET")
    if env:
        return env

    path: StrPath
    try:
        # The daemon's own rules (addicted_jobs.paths) on the config file read as TOML only.
        path = daemon_socket(getattr(ns, "config", None))
    except Unresolved:
        from addicted_jobs.settings import load_settings  # says precisely what is wrong

        path = load_settings(getattr(ns, "config", None)).socket_path
    if not os.path.exists(path) and not os.environ.get("RUNTIME_DIRECTORY"):
        if os.path.exists(UNIT_SOCKET):
            return UNIT_SOCKET  # the daemon runs under the unit; this shell is not inside it
        ns.socket_hint = f"; nor at the unit's {UNIT_SOCKET} (give --socket or [control] socket)"
    return path


def make_client(path: StrPath, timeout: float) -> ControlClient:
    return ControlClient(path, timeout)


async def _run_command(cmd: Command, ns: argparse.Namespace, path: StrPath) -> int:
    client = make_client(path, ns.timeout)
    ctx = Context(client, json=bool(getattr(ns, "json", False)))
    try:
        return await cmd.handler(ctx, ns)
    finally:
        await client.close()


def _quiet_stdout() -> None:
    # The reader went away (`| head`): further writes, and the flush at exit, must not raise.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK


def _config_error(exc: Exception) -> bool:
    # Only loading the settings raises ConfigError, so a command that never loaded them (a
    # socket given with --socket) need not import them (pydantic-settings: ~0.3 s) to check.
    settings = sys.modules.get("addicted_jobs.settings")
    return settings is not None and isinstance(exc, settings.ConfigError)


def _parse(words: list[str]) -> argparse.Namespace | int:
    """The words through argparse: the namespace, or the exit code when there is nothing to run
    (help and --version: 0; a usage error, reported as text or --json: 2)."""
    from addicted_jobs.cli.parser import build_parser

    wants_json = "--json" in words
    # The first word names the command when it is one: only its parser is built.
    parser = build_parser(words[0] if words else None)
    try:
        ns = parser.parse_args(words)
    except SystemExit as exc:  # --help/--version exit 0
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except UsageError as exc:
        command = words[0] if words and not words[0].startswith("-") else ""
        if not wants_json:
            prefix = f"addicted-jobs {command}:" if command else "addicted-jobs:"
            print(f"{prefix} {exc}", file=sys.stderr)
            return EXIT_USAGE
        return fail(command, True, EXIT_USAGE, "usage", str(exc).splitlines()[0])
    if ns.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return ns


def _main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    ns = None
    if words and words[0] in MODULES:
        # The light way in: only the command's own module, and no argparse when its words are
        # plain (issue 16: `ping` should cost little more than Python and the round trip).
        cmd = load_commands(words[0]).get(words[0])
        ns = read_common_words(cmd, words[1:]) if cmd is not None else None
    if ns is None:
        parsed = _parse(words)
        if isinstance(parsed, int):
            return parsed
        ns = parsed
    if ns.command in ("run", "demo", "systemd-files"):
        from addicted_jobs.cli.daemon import cmd_demo, cmd_run, cmd_systemd_files

        run_here = {"run": cmd_run, "demo": cmd_demo, "systemd-files": cmd_systemd_files}
        return run_here[ns.command](ns)
    name = ns.command
    as_json = getattr(ns, "json", None) not in (None, False)
    try:
        path = resolve_socket(ns)
        return asyncio.run(_run_command(COMMANDS[ns.command], ns, path))
    except UsageError as exc:
        return fail(name, as_json, EXIT_USAGE, "usage", str(exc))
    except DaemonError as exc:
        message = exc.message if as_json else f"{exc.code}: {exc.message}"
        return fail(name, as_json, EXIT_DAEMON_ERROR, exc.code, message, exc.details)
    except Failed as exc:
        return fail(name, as_json, EXIT_DAEMON_ERROR, "failed", str(exc))
    except Unreachable as exc:
        text = str(exc) + getattr(ns, "socket_hint", "")
        message = text if as_json else f"daemon unreachable: {text}"
        return fail(name, as_json, EXIT_UNREACHABLE, "unreachable", message)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if not _config_error(exc):
            raise
        if not as_json:
            print(f"addicted-jobs: bad configuration: {exc}", file=sys.stderr)
            return EX_CONFIG
        return fail(name, True, EX_CONFIG, "config", f"bad configuration: {exc}")


if __name__ == "__main__":
    sys.exit(main())
