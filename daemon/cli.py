"""Command line: `run` starts the daemon; every other command talks to it over the control socket.

Exit codes: 0 ok, 1 the daemon answered with an error, 2 usage error, 3 daemon unreachable,
78 bad configuration.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from daemon import __version__

EXIT_USAGE = 2
EX_CONFIG = 78


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from daemon.app import run_daemon
    from daemon.settings import ConfigError, load_settings

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"addicted-jobs: bad configuration: {exc}", file=sys.stderr)
        return EX_CONFIG
    return run_daemon(settings, args.config)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "run":
        return cmd_run(args)
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
