"""The command table and what a command sees: exit codes, usage errors, the Context a handler
gets (the daemon and the output mode), and the @command decorator that fills COMMANDS.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, TextIO

from addicted_jobs.control.client import ControlClient

if TYPE_CHECKING:
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


Handler = Callable[[Context, argparse.Namespace], Awaitable[int]]


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
