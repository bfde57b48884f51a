"""The command table and what a command sees: exit codes, usage errors, the Context a handler
gets (the daemon and the output mode), the @command decorator that fills COMMANDS, and the light
way in for a socket command: load only the module that defines it (MODULES) and read its words
without argparse when they are only the common options (read_common_words).

Nothing here imports argparse (~2.5 ms) or pathlib (~4 ms): issue 16's target is that `ping`
costs no more than 1.2x a bare `python -c 'import asyncio, json, socket'` plus the round trip.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO, cast

from addicted_jobs.control.client import ControlClient

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

EXIT_OK = 0
EXIT_DAEMON_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


def path_arg(value: str) -> Path:
    """argparse type of a path option: pathlib is imported when such an option is given, not
    by every command (it costs ~6 ms of a `ping` that should cost little more than Python)."""
    from pathlib import Path

    return Path(value)


class UsageError(Exception):
    """Bad command-line input found after parsing (exit 2)."""


class Failed(Exception):
    """The daemon answered, and the answer means failure (exit 1), e.g. ping: database down."""


def positive_seconds(minimum: float) -> Callable[[str], float]:
    """An argparse type: a number of seconds, at least `minimum` (0 and negatives are refused)."""

    def parse(text: str) -> float:
        try:
            value: float | None = float(text)
        except ValueError:
            value = None
        if value is not None and minimum <= value < float("inf"):
            return value
        # argparse only on the error path: argparse itself is what calls this, but for
        # read_common_words, which gives up on any exception and lets argparse report it.
        import argparse

        if value is None:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
        raise argparse.ArgumentTypeError(
            f"{text} seconds is out of range: give at least {minimum:g}"
        )

    return parse


# Plain classes and NamedTuples, not dataclasses: importing dataclasses (and copy) and building a
# dataclass cost ~4 ms of every command's start-up (issue 16's `ping` target).
class Context:
    """What a command sees: the daemon (call), the output mode, and where to print."""

    __slots__ = ("client", "json", "out")

    def __init__(self, client: ControlClient, json: bool = False, out: TextIO | None = None):
        self.client = client
        self.json = json
        self.out = out if out is not None else sys.stdout

    async def call(self, op: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.client.call(op, args)

    def emit(self, result: dict[str, Any], human: Callable[[dict[str, Any]], str]) -> None:
        """Print `result` as one JSON document with --json, else as `human` renders it."""
        if self.json:
            print(json.dumps(result, indent=2, ensure_ascii=False), file=self.out)
        else:
            print(human(result), file=self.out)


Handler = Callable[[Context, "argparse.Namespace"], Awaitable[int]]


class Command(NamedTuple):
    """One command of the table: its name, help, handler and argparse arguments."""

    name: str
    help: str
    handler: Handler
    arguments: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = ()
    json_flag: bool = True
    description: str = ""
    epilog: str = ""


COMMANDS: dict[str, Command] = {}

# Which module defines each socket command, so that a command imports its own module only (the
# others cost ~4 ms together), in the order `--help` lists them. A command missing here still
# works, through every module; tests/unit/cli/test_command_table.py keeps the two in step.
ORDER = ("engine", "jobs", "subtitles", "importer")
MODULES = {
    **dict.fromkeys(
        ("enqueue", "ping", "job", "queues", "pause", "resume", "recurring", "trigger"), "engine"
    ),
    **dict.fromkeys(("job-types", "migrations", "reload", "top", "nodes"), "engine"),
    **dict.fromkeys(("jobs", "retry", "cancel", "delete"), "jobs"),
    **dict.fromkeys(("request-subtitles", "credentials", "storage"), "subtitles"),
    "import-addictedproxy": "importer",
}


class Option(NamedTuple):
    """An option every socket command takes: how its value is read, its default, its help."""

    read: Callable[[str], Any]
    default: Any
    help: str


# The argparse parser (cli/parser.py) and read_common_words both read this one table.
COMMON_OPTIONS = {
    "--socket": Option(str, None, "control socket path (overrides the config)"),
    "--config": Option(path_arg, None, "TOML config file to find the socket in"),
    "--timeout": Option(positive_seconds(0.001), 60.0, "seconds to wait for a reply (more than 0)"),
}


def load_commands(name: str | None = None) -> dict[str, Command]:
    """COMMANDS after importing the module that defines `name`, or every command module when
    `name` is None or not in MODULES. Returns the table itself (name -> Command)."""
    for module in (MODULES[name],) if name in MODULES else ORDER:
        importlib.import_module(f"addicted_jobs.cli.{module}")
    return COMMANDS


def listing_order(command: Command) -> int:
    """Where `command` goes in `--help`: by its module's place in ORDER, whatever order the
    modules were imported in (a command registered elsewhere, e.g. by a test, goes last)."""
    module = command.handler.__module__.rpartition(".")[2]
    return ORDER.index(module) if module in ORDER else len(ORDER)


def _plain_positional(flags: tuple[str, ...], options: dict[str, Any]) -> bool:
    # A positional argument read as argparse reads it: one word, converted by int or str.
    return (
        len(flags) == 1
        and flags[0].isidentifier()
        and set(options) <= {"type", "help", "metavar"}
        and options.get("type", str) in (int, str)
    )


def read_common_words(command: Command, words: Sequence[str]) -> argparse.Namespace | None:
    """The namespace argparse would make of `words` (what follows the command's name) when they
    are the command's plain positional arguments and the common options only (--socket, --config,
    --timeout, --json, as `--opt value` or `--opt=value`); None for anything else (help, an
    abbreviation, a fault, an option of the command's own), which then goes to argparse and its
    messages. This skips importing argparse and building a parser: ~5 ms of `ping`."""
    if not all(_plain_positional(flags, options) for flags, options in command.arguments):
        return None
    values: dict[str, Any] = {name[2:]: o.default for name, o in COMMON_OPTIONS.items()}
    values["command"] = command.name
    if command.json_flag:
        values["json"] = False
    positional: list[str] = []
    index = 0
    try:
        while index < len(words):
            word = words[index]
            index += 1
            if not word.startswith("-"):
                positional.append(word)
                continue
            name, equals, value = word.partition("=")
            if name == "--json" and command.json_flag and not equals:
                values["json"] = True
                continue
            if name not in COMMON_OPTIONS:
                return None
            if not equals:
                if index == len(words) or words[index].startswith("-"):
                    return None
                value = words[index]
                index += 1
            values[name[2:]] = COMMON_OPTIONS[name].read(value)
        if len(positional) != len(command.arguments):
            return None
        for (flags, options), word in zip(command.arguments, positional, strict=True):
            values[flags[0]] = options.get("type", str)(word)
    except Exception:  # a value argparse refuses: it says why
        return None
    # argparse.Namespace is a plain attribute bag; SimpleNamespace behaves the same for every
    # handler (attributes, getattr with a default, setattr) without importing argparse.
    return cast("argparse.Namespace", SimpleNamespace(**values))


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


def fail(
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
