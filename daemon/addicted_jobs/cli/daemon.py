"""The commands that run in this process rather than ask the daemon: `run`, `demo` and
`systemd-files`. Each imports what it needs (the daemon, the demo, the deployment files) inside
the command, so no other command pays for loading them (pyproject's import-linter contract names
these imports).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from addicted_jobs.cli.command import EX_CONFIG, EXIT_DAEMON_ERROR, EXIT_OK, EXIT_USAGE, fail


def cmd_run(args: argparse.Namespace) -> int:
    from addicted_jobs.app import run_daemon
    from addicted_jobs.settings import ConfigError, load_settings

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
