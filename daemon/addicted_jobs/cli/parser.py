"""The argparse parser of the command line: run, demo and systemd-files, then every socket command
of the table. A socket command whose words are plain (command.read_common_words) never builds it;
help, usage errors and the commands with options of their own do.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from addicted_jobs import __version__
from addicted_jobs.cli.command import (
    COMMANDS,
    COMMON_OPTIONS,
    UsageError,
    listing_order,
    load_commands,
)


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors raise UsageError, so `--json` can report them as JSON."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\n{self.format_usage().strip()}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser: run, demo, systemd-files, then every command of the table in `--help` order;
    with `only` (a command's name) just what `main` needs to parse its words: that socket command,
    or for run, demo and systemd-files those three. Building every subparser, and importing every
    command module for it, took ~10 ms of a `ping` that should cost little more than Python
    itself, and ~8 ms of the daemon's start before its first job."""
    from addicted_jobs.cli.daemon import DAEMON_COMMANDS, add_daemon_commands

    parser = Parser(
        prog="addicted-jobs", description="Durable job daemon for the subtitle catalogue"
    )
    parser.add_argument("--version", action="version", version=f"addicted-jobs {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if only in DAEMON_COMMANDS:
        add_daemon_commands(sub)
        return parser
    commands = load_commands(only)
    if only not in COMMANDS:
        add_daemon_commands(sub)
    common = Parser(add_help=False)
    for name, option in COMMON_OPTIONS.items():
        common.add_argument(name, type=option.read, default=option.default, help=option.help)
    wanted = [COMMANDS[only]] if only in COMMANDS else sorted(commands.values(), key=listing_order)
    for cmd in wanted:
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
