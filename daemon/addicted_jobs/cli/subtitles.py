"""The subtitle domain's commands: `request-subtitles`, `credentials add|list|remove`, and
`storage get SUBTITLE_ID [-o FILE]` (a stored subtitle byte for byte) and `storage
train-dictionary [--from-stored N | --from-dir DIR]` (train a dictionary). They only talk to the
daemon: nothing of the domain is imported here.
"""

from __future__ import annotations

import base64
import os
import sys
from typing import TYPE_CHECKING, Any

from addicted_jobs.cli.command import Context, UsageError, arg, command, path_arg
from addicted_jobs.cli.output import render_credentials, render_request_subtitles

if TYPE_CHECKING:
    import argparse  # annotations only: argparse loads when a parser is built
    from pathlib import Path

# The socket operations (addicted_jobs.tasks.ops.storage), named here so the client stays light.
GET_OP = "storage-get"
TRAIN_OP = "storage-train-dictionary"
EXIT_CORRUPT = 1


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


@command(
    "storage",
    "stored subtitles: `get SUBTITLE_ID [-o FILE]`, "
    "`train-dictionary [--from-stored N | --from-dir DIR] [--dry-run]`",
    arg("action", choices=("get", "train-dictionary")),
    arg("subtitle_id", nargs="?", type=int, metavar="SUBTITLE_ID", help="numeric subtitle id"),
    arg("-o", "--output", type=path_arg, metavar="FILE", help="get: write the file here"),
    arg("--from-stored", type=int, metavar="N", help="train on N stored files (default 1000)"),
    arg("--from-dir", type=path_arg, metavar="DIR", help="train on up to 1000 files in DIR"),
    arg("--dry-run", action="store_true", help="train and measure, but keep the current one"),
)
async def storage(ctx: Context, ns: argparse.Namespace) -> int:
    if ns.action == "get":
        if ns.subtitle_id is None:
            raise UsageError("get needs the subtitle's numeric id: storage get SUBTITLE_ID")
        if ns.from_stored is not None or ns.from_dir is not None or ns.dry_run:
            raise UsageError("--from-stored, --from-dir and --dry-run belong to train-dictionary")
        return await _get(ctx, ns.subtitle_id, ns.output)
    if ns.subtitle_id is not None or ns.output is not None:
        raise UsageError("train-dictionary takes no SUBTITLE_ID or -o")
    if ns.from_stored is not None and ns.from_dir is not None:
        raise UsageError("give --from-stored N or --from-dir DIR, not both")
    request: dict[str, Any] = {"dry_run": ns.dry_run}
    if ns.from_stored is not None:
        request["from_stored"] = ns.from_stored
    if ns.from_dir is not None:
        # The daemon reads the directory, from its own working directory: send it absolute.
        request["from_dir"] = str(ns.from_dir.expanduser().absolute())
    ctx.emit(await ctx.call(TRAIN_OP, request), _training)
    return 0


async def _get(ctx: Context, subtitle_id: int, output: Path | None) -> int:
    # A big file comes in parts (a few MiB per reply line): ask until `more` is false.
    result = await ctx.call(GET_OP, {"subtitle_id": subtitle_id})
    parts = [base64.b64decode(result["content"])]
    received = len(parts[0])
    while result.get("more"):
        result = await ctx.call(GET_OP, {"subtitle_id": subtitle_id, "offset": received})
        parts.append(base64.b64decode(result["content"]))
        received += len(parts[-1])
        if not parts[-1]:
            break  # the object changed size under us: the checksum below says so
    data = b"".join(parts)
    result.update(offset=0, more=False)
    result["content"] = base64.b64encode(data).decode("ascii") if ctx.json and not output else ""
    import hashlib  # here, not at the top: every other command starts without it

    if hashlib.sha256(data).hexdigest() != result["sha256"]:
        print(f"addicted-jobs storage: subtitle {subtitle_id} arrived damaged", file=sys.stderr)
        return EXIT_CORRUPT
    if output is not None:
        try:
            _write(output, data)
        except OSError as exc:
            # Not a usage error (2): the command was right, the file system refused.
            reason = exc.strerror or str(exc)
            print(f"addicted-jobs storage: cannot write {output}: {reason}", file=sys.stderr)
            return 1
        if ctx.json:
            ctx.emit({k: v for k, v in result.items() if k != "content"}, str)
        else:
            print(f"wrote {len(data)} bytes to {output}", file=sys.stderr)
    elif ctx.json:
        ctx.emit(result, str)
    else:
        _write_stdout(ctx, data)
    return 0


def _write(path: Path, data: bytes) -> None:
    # Beside the target, then renamed: an interrupted write never leaves half a file. The temporary
    # name is random and created exclusively (mkstemp: O_CREAT|O_EXCL, mode 0600): a predictable
    # `.NAME.PID.tmp` let another local user plant a symlink there, in /tmp say, and have this
    # command (run as root) write the subtitle through it over any file.
    tmp: Path | None = None
    try:
        import tempfile  # with shutil, bz2, lzma and random: only `storage get -o` needs it

        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = path.with_name(os.path.basename(name))
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    # The file gets the mode a plain open() would give it, as before; mkstemp makes it 0600.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_stdout(ctx: Context, data: bytes) -> None:
    ctx.out.flush()
    buffer = getattr(ctx.out, "buffer", None)
    if buffer is not None:
        buffer.write(data)  # the bytes as downloaded: no decoding, no added newline
        buffer.flush()
    else:
        ctx.out.write(data.decode("utf-8", errors="surrogateescape"))


def _training(r: dict[str, Any]) -> str:
    versus = r["gain_vs_previous"]
    lines = [
        f"dictionary {r['dictionary_id']} ({r['dictionary_bytes']} bytes), "
        f"trained on {r['trained_on']} files, measured on {r['held_out']} held out",
        f"  {r['gain_vs_plain']:.3f}x smaller than plain zstd",
    ]
    if versus is not None:
        lines.append(f"  {versus:.3f}x smaller than the current dictionary {r['previous_id']}")
    lines.append(f"  {r['reason']}")
    return "\n".join(lines)
