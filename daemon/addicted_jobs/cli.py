"""Command line: `run` starts the daemon; every other command talks to it over the control socket.

Exit codes: 0 ok, 1 the daemon answered with an error, 2 usage error, 3 daemon unreachable,
78 bad configuration. Commands live in a table (COMMANDS); `cli_commands.py` fills it, and a
domain module listed in EXTENSIONS adds its own with the same @command decorator.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TextIO

from addicted_jobs import __version__
from addicted_jobs.control.client import ControlClient, DaemonError, Unreachable

EXIT_OK = 0
EXIT_DAEMON_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
# Modules whose import registers more commands (the engine's own, then the domain's).
EXTENSIONS: list[str] = [
    "addicted_jobs.cli_commands",
    "addicted_jobs.cli_jobs",
    "addicted_jobs.cli_domain",
    "addicted_jobs.cli_storage",
    "addicted_jobs.cli_import",
    "addicted_jobs.cli_cluster",
]


# Where the packaged unit's RuntimeDirectory=addicted-jobs puts the socket. A command run from a
# shell has no $RUNTIME_DIRECTORY, so it looks here when the config names no socket.
UNIT_SOCKET = Path("/run/addicted-jobs/control.sock")


class UsageError(Exception):
    """Bad command-line input found after parsing (exit 2)."""


class Failed(Exception):
    """The daemon answered, and the answer means failure (exit 1), e.g. ping: database down."""


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors raise UsageError, so `--json` can report them as JSON."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\n{self.format_usage().strip()}")


def positive_seconds(minimum: float) -> Callable[[str], float]:
    """An argparse type: a number of seconds, at least `minimum` (0 and negatives are refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not value >= minimum or value == float("inf"):
            raise argparse.ArgumentTypeError(
                f"{text} seconds is out of range: give at least {minimum:g}"
            )
        return value

    return parse


@dataclass
class Context:
    """What a command sees: the daemon (call), the output mode, and where to print."""

    client: ControlClient
    json: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)

    async def call(self, op: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.client.call(op, args)

    def emit(self, result: dict[str, Any], human: Callable[[dict[str, Any]], str]) -> None:
        """Print `result` as one JSON document with --json, else as `human` renders it."""
        if self.json:
            print(json.dumps(result, indent=2, ensure_ascii=False), file=self.out)
        else:
            print(human(result), file=self.out)


Handler = Callable[[Context, argparse.Namespace], Awaitable[int]]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    handler: Handler
    arguments: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = ()
    json_flag: bool = True
    description: str = ""
    epilog: str = ""


COMMANDS: dict[str, Command] = {}


def arg(*flags: str, **options: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """One argparse argument of a command: arg("id", type=int), arg("--limit", type=int)."""
    return flags, options


def command(
    name: str,
    help: str,
    *arguments: tuple[tuple[str, ...], dict[str, Any]],
    json_flag: bool = True,
    description: str = "",
    epilog: str = "",
) -> Callable[[Handler], Handler]:
    """Register a socket command; the handler calls ops through ctx and returns an exit code."""

    def register(handler: Handler) -> Handler:
        if name in COMMANDS or name == "run":
            raise ValueError(f"command {name!r} is registered twice")
        COMMANDS[name] = Command(name, help, handler, arguments, json_flag, description, epilog)
        return handler

    return register


def _load_extensions() -> None:
    for module in EXTENSIONS:
        importlib.import_module(module)


def build_parser() -> argparse.ArgumentParser:
    _load_extensions()
    parser = _Parser(
        prog="addicted-jobs", description="Durable job daemon for the subtitle catalogue"
    )
    parser.add_argument("--version", action="version", version=f"addicted-jobs {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run the daemon in the foreground")
    run.add_argument(
        "--config",
        type=Path,
        help="TOML config file (default /etc/addicted-jobs/config.toml if present)",
    )
    demo = sub.add_parser(
        "demo", help="the whole pipeline on embedded defaults against the sandbox upstream"
    )
    demo.add_argument(
        "--shows", type=int, default=200, help="shows in the sandbox catalogue (10 to 100000)"
    )
    demo.add_argument("--sample-shows", type=int, default=20, help="shows to refresh in full")
    demo.add_argument(
        "--sample-subtitles", type=int, default=60, help="subtitles to download and store"
    )
    demo.add_argument(
        "--state", type=Path, help="keep the state here (default: a temporary directory)"
    )
    demo.add_argument("--keep", action="store_true", help="keep the temporary state directory")
    files = sub.add_parser(
        "systemd-files",
        help="write the systemd unit, sysusers file and example config shipped with this install",
    )
    files.add_argument("dir", type=Path, help="directory to write them to")
    files.add_argument(
        "--bin", help="addicted-jobs path for the unit's ExecStart (default: this installation's)"
    )
    files.add_argument("--force", action="store_true", help="overwrite existing files")
    files.add_argument("--json", action="store_true", help="machine-readable output")
    common = _Parser(add_help=False)
    common.add_argument("--socket", type=Path, help="control socket path (overrides the config)")
    common.add_argument("--config", type=Path, help="TOML config file to find the socket in")
    common.add_argument(
        "--timeout",
        type=positive_seconds(0.001),
        default=60.0,
        help="seconds to wait for a reply (more than 0)",
    )
    for cmd in COMMANDS.values():
        p = sub.add_parser(
            cmd.name,
            help=cmd.help,
            description=cmd.description or cmd.help,
            epilog=cmd.epilog,
            parents=[common],
        )
        if cmd.json_flag:
            p.add_argument("--json", action="store_true", help="machine-readable output")
        for flags, options in cmd.arguments:
            p.add_argument(*flags, **options)
    return parser


def resolve_socket(ns: argparse.Namespace) -> Path:
    """--socket, else [control] socket of --config, else ADDICTED_JOBS_CONTROL__SOCKET, else the
    daemon's default path. A bad config file raises ConfigError (exit 78)."""
    from addicted_jobs.settings import load_settings

    if getattr(ns, "socket", None):
        return Path(ns.socket)
    if getattr(ns, "config", None):
        load_settings(ns.config)  # a broken file is exit 78 even when only the socket is wanted
        # The file's own value: the documented order puts it before the environment.
        control = tomllib.loads(Path(ns.config).read_text(encoding="utf-8")).get("control", {})
        if isinstance(control, dict) and control.get("socket"):
            return Path(control["socket"])
    env = os.environ.get("ADDICTED_JOBS_CONTROL__SOCKET")
    if env:
        return Path(env)
    path = load_settings(getattr(ns, "config", None)).socket_path
    if not path.exists() and not os.environ.get("RUNTIME_DIRECTORY"):
        if UNIT_SOCKET.exists():
            return UNIT_SOCKET  # the daemon runs under the unit; this shell is not inside it
        ns.socket_hint = f"; nor at the unit's {UNIT_SOCKET} (give --socket or [control] socket)"
    return path


def cmd_run(args: argparse.Namespace) -> int:
    from addicted_jobs.app import run_daemon
    from addicted_jobs.settings import EX_CONFIG, ConfigError, load_settings

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"addicted-jobs: bad configuration: {exc}", file=sys.stderr)
        return EX_CONFIG
    return run_daemon(settings, args.config)


def cmd_demo(args: argparse.Namespace) -> int:
    import uvloop

    from addicted_jobs.demo import DemoOptions, run_demo

    if not 10 <= args.shows <= 100_000:
        print(f"addicted-jobs demo: --shows takes 10 to 100000, got {args.shows}", file=sys.stderr)
        return EXIT_USAGE
    for flag, value in (
        ("--sample-shows", args.sample_shows),
        ("--sample-subtitles", args.sample_subtitles),
    ):
        if value < 0:
            print(f"addicted-jobs demo: {flag} takes 0 or more, got {value}", file=sys.stderr)
            return EXIT_USAGE
    options = DemoOptions(
        args.shows, args.sample_shows, args.sample_subtitles, args.state, args.keep
    )
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run_demo(options))


def cmd_systemd_files(args: argparse.Namespace) -> int:
    from addicted_jobs.deploy import (
        NEXT_STEPS,
        BadBinary,
        DeployError,
        check_binary,
        default_bin,
        write_files,
    )

    try:
        binary = check_binary(args.bin or default_bin())
    except BadBinary as exc:
        return _fail("systemd-files", args.json, EXIT_USAGE, "usage", str(exc))
    try:
        written = write_files(args.dir, binary, args.force)
    except (DeployError, OSError) as exc:
        return _fail("systemd-files", args.json, EXIT_DAEMON_ERROR, "failed", str(exc))
    if args.json:
        print(json.dumps({"written": [str(p) for p in written], "bin": binary}, indent=2))
        return EXIT_OK
    for path in written:
        print(f"wrote {path}")
    print(NEXT_STEPS.format(dir=args.dir))
    return EXIT_OK


def make_client(path: Path, timeout: float) -> ControlClient:
    return ControlClient(path, timeout)


async def _run_command(cmd: Command, ns: argparse.Namespace, path: Path) -> int:
    client = make_client(path, ns.timeout)
    ctx = Context(client, json=bool(getattr(ns, "json", False)))
    try:
        return await cmd.handler(ctx, ns)
    finally:
        await client.close()


def _fail(
    command: str, as_json: bool, code: int, kind: str, message: str, details: Any = None
) -> int:
    """One error: a line on stderr, or with --json one JSON object on stdout
    {"ok": false, "error": {"code", "message", "exit"}} (what scripts parse)."""
    if as_json:
        error: dict[str, Any] = {"code": kind, "message": message, "exit": code}
        if details:
            error["details"] = details
        print(json.dumps({"ok": False, "error": error}, ensure_ascii=False))
    else:
        print(f"addicted-jobs {command}: {message}", file=sys.stderr)
    return code


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


def _main(argv: list[str] | None = None) -> int:
    from addicted_jobs.settings import EX_CONFIG, ConfigError

    words = sys.argv[1:] if argv is None else argv
    wants_json = "--json" in words
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exc:  # --help/--version exit 0
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except UsageError as exc:
        command = words[0] if words and not words[0].startswith("-") else ""
        if not wants_json:
            prefix = f"addicted-jobs {command}:" if command else "addicted-jobs:"
            print(f"{prefix} {exc}", file=sys.stderr)
            return EXIT_USAGE
        return _fail(command, True, EXIT_USAGE, "usage", str(exc).splitlines()[0])
    if ns.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if ns.command == "run":
        return cmd_run(ns)
    if ns.command == "demo":
        return cmd_demo(ns)
    if ns.command == "systemd-files":
        return cmd_systemd_files(ns)
    name = ns.command
    as_json = getattr(ns, "json", None) not in (None, False)
    try:
        path = resolve_socket(ns)
        return asyncio.run(_run_command(COMMANDS[ns.command], ns, path))
    except ConfigError as exc:
        if not as_json:
            print(f"addicted-jobs: bad configuration: {exc}", file=sys.stderr)
            return EX_CONFIG
        return _fail(name, True, EX_CONFIG, "config", f"bad configuration: {exc}")
    except UsageError as exc:
        return _fail(name, as_json, EXIT_USAGE, "usage", str(exc))
    except DaemonError as exc:
        message = exc.message if as_json else f"{exc.code}: {exc.message}"
        return _fail(name, as_json, EXIT_DAEMON_ERROR, exc.code, message, exc.details)
    except Failed as exc:
        return _fail(name, as_json, EXIT_DAEMON_ERROR, "failed", str(exc))
    except Unreachable as exc:
        text = str(exc) + getattr(ns, "socket_hint", "")
        message = text if as_json else f"daemon unreachable: {text}"
        return _fail(name, as_json, EXIT_UNREACHABLE, "unreachable", message)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
