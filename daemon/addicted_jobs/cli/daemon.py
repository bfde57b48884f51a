"""The commands that run in this process rather than ask the daemon: `run`, `demo` and
`systemd-files`. Each imports what it needs (the daemon, the demo, the deployment files) inside
the command, so no other command pays for loading them (pyproject's import-linter contract names
these imports).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
from typing import Any

from addicted_jobs.cli.command import EXIT_DAEMON_ERROR, EXIT_OK, EXIT_USAGE, fail, path_arg
from addicted_jobs.exit_codes import EX_CONFIG

# The commands that run in this process (add_daemon_commands), in `--help` order.
DAEMON_COMMANDS = ("run", "demo", "systemd-files")


def add_daemon_commands(sub: Any) -> None:
    """Add run, demo and systemd-files to `sub` (an argparse subparsers action)."""
    run = sub.add_parser("run", help="run the daemon in the foreground")
    run.add_argument(
        "--config",
        type=path_arg,
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
        "--state", type=path_arg, help="keep the state here (default: a temporary directory)"
    )
    demo.add_argument("--keep", action="store_true", help="keep the temporary state directory")
    files = sub.add_parser(
        "systemd-files",
        help="write the systemd unit, sysusers file and example config shipped with this install",
    )
    files.add_argument("dir", type=path_arg, help="directory to write them to")
    files.add_argument(
        "--bin", help="addicted-jobs path for the unit's ExecStart (default: this installation's)"
    )
    files.add_argument("--force", action="store_true", help="overwrite existing files")
    files.add_argument("--json", action="store_true", help="machine-readable output")


def cmd_run(args: argparse.Namespace) -> int:
    # Importing the daemon makes ~87,000 objects the cyclic collector tracks, nearly all living
    # as long as the process (modules, classes, models). The collector found no garbage among
    # them but walked them ~12 times during the imports and once in full (~30-35 ms) before the
    # first job. It stays off until the daemon is built; run_daemon then freezes what exists and
    # turns it back on (and so does the finally below, for the paths that never reach it).
    gc.disable()
    try:
        from addicted_jobs.app import run_daemon
        from addicted_jobs.settings import ConfigError, load_settings

        try:
            settings = load_settings(args.config)
        except ConfigError as exc:
            print(f"addicted-jobs: bad configuration: {exc}", file=sys.stderr)
            return EX_CONFIG
        return run_daemon(settings, args.config)
    finally:
        gc.enable()


def cmd_demo(args: argparse.Namespace) -> int:
    import uvloop

    from addicted_jobs.sandbox.demo import DemoOptions, run_demo

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
        return fail("systemd-files", args.json, EXIT_USAGE, "usage", str(exc))
    try:
        written = write_files(args.dir, binary, args.force)
    except (DeployError, OSError) as exc:
        return fail("systemd-files", args.json, EXIT_DAEMON_ERROR, "failed", str(exc))
    if args.json:
        print(json.dumps({"written": [str(p) for p in written], "bin": binary}, indent=2))
        return EXIT_OK
    for path in written:
        print(f"wrote {path}")
    print(NEXT_STEPS.format(dir=args.dir))
    return EXIT_OK
