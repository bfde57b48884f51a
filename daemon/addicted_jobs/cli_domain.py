"""Domain commands of the command line: `request-subtitles` and `credentials add|list|remove`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from addicted_jobs.cli import Context, UsageError, arg, command
from addicted_jobs.tasks.catalogue_ops import render_request_subtitles
from addicted_jobs.tasks.credential_ops import render_credentials


@command(
    "request-subtitles",
    "ask for one episode's subtitles: enqueues fetch_subtitles only when a refresh is due",
    arg("show_id", type=int, metavar="SHOW_ID"),
    arg("season", type=int, metavar="SEASON"),
    arg("episode", type=int, metavar="EPISODE"),
    arg(
        "language",
        metavar="LANGUAGE",
        help="a language name or code: English, pt-BR, French (Canadian)",
    ),
)
async def request_subtitles(ctx: Context, ns: argparse.Namespace) -> int:
    result = await ctx.call(
        "request-subtitles",
        {
            "show_id": ns.show_id,
            "season": ns.season,
            "episode": ns.episode,
            "language": ns.language,
        },
    )
    ctx.emit(result, render_request_subtitles)
    return 0


@command(
    "credentials",
    "Addic7ed credentials: `add COOKIE` (- reads it from stdin), `list`, `remove ID`",
    arg("action", choices=("add", "list", "remove")),
    arg("value", nargs="?", metavar="COOKIE|ID"),
)
async def credentials(ctx: Context, ns: argparse.Namespace) -> int:
    if ns.action == "list":
        if ns.value is not None:
            raise UsageError("credentials list takes no argument")
        ctx.emit(await ctx.call("credentials-list"), render_credentials)
        return 0
    if ns.value is None:
        raise UsageError(
            f"credentials {ns.action} needs {'a COOKIE' if ns.action == 'add' else 'an ID'}"
        )
    if ns.action == "add":
        # "-" keeps the cookie out of the shell history and the process list.
        cookie = sys.stdin.read().strip() if ns.value == "-" else ns.value
        ctx.emit(await ctx.call("credentials-add", {"cookie": cookie}), _added)
        return 0
    try:
        credential_id = int(ns.value)
    except ValueError:
        raise UsageError(f"credentials remove needs a numeric ID, got {ns.value!r}") from None
    ctx.emit(await ctx.call("credentials-remove", {"id": credential_id}), _removed)
    return 0


def _added(result: dict[str, Any]) -> str:
    verb = "added" if result.get("created", True) else "already known as"
    return f"{verb} credential {result.get('id')} ({result.get('cookie')})"


def _removed(result: dict[str, Any]) -> str:
    return f"removed credential {result.get('id')}"
