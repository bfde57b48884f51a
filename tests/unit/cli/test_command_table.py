"""The light way into a socket command (issue 16: `ping` should cost little more than Python and
the round trip): a command imports only the module that defines it, and plain words are read
without argparse. Both shortcuts must give exactly what the full parser gives, or step aside."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from addicted_jobs.cli.command import (
    MODULES,
    ORDER,
    listing_order,
    load_commands,
    read_common_words,
)
from addicted_jobs.cli.parser import build_parser

COMMANDS = load_commands()


def own_commands() -> dict[str, str]:
    """Every command the cli modules register, with the module that registers it."""
    return {
        name: cmd.handler.__module__.rpartition(".")[2]
        for name, cmd in COMMANDS.items()
        if cmd.handler.__module__.startswith("addicted_jobs.cli.")
    }


def test_every_command_is_found_in_its_own_module() -> None:
    # A command added to a module but not to MODULES would still work, through every module:
    # slower, silently. A stale entry would import a module that does not define the command.
    assert own_commands() == MODULES
    assert set(MODULES.values()) == set(ORDER)


def plain(name: str) -> bool:
    return all(
        not flags[0].startswith("-") and set(options) <= {"type", "help", "metavar"}
        for flags, options in COMMANDS[name].arguments
    )


PLAIN = sorted(name for name in MODULES if plain(name))
POSITIONAL = {
    "job": ["7"],
    "pause": ["default"],
    "resume": ["default"],
    "trigger": ["daily"],
    "request-subtitles": ["1", "2", "3", "pt-BR"],
}
WORDS = [
    [],
    ["--json"],
    ["--socket", "/run/x.sock"],
    ["--socket=/run/x.sock", "--timeout", "2.5"],
    ["--config", "c.toml", "--json", "--timeout=0.5"],
    ["--socket", "/a", "--socket", "/b"],  # the last one wins, as in argparse
    ["--socket="],
]
REFUSED = [
    ["--timeout", "0"],  # out of range: argparse says so
    ["--timeout", "soon"],
    ["--socket"],
    ["--socket", "--json"],
    ["--sock", "/x"],  # an abbreviation argparse accepts: left to it
    ["-h"],
    ["--help"],
    ["--", "x"],
    ["extra"],
    ["--verbose"],
]


def test_the_plain_commands_are_the_ones_users_type_most() -> None:
    assert {"ping", "queues", "nodes", "job", "pause", "resume"} <= set(PLAIN)


@pytest.mark.parametrize("name", PLAIN)
def test_plain_words_read_as_argparse_reads_them(name: str) -> None:
    positional = POSITIONAL.get(name, [])
    for words in WORDS:
        words = [*positional, *words]
        if "--json" in words and not COMMANDS[name].json_flag:
            continue
        light = read_common_words(COMMANDS[name], words)
        assert light is not None, words
        full = build_parser(name).parse_args([name, *words])
        assert vars(light) == vars(full), words


@pytest.mark.parametrize("name", PLAIN)
def test_other_words_go_to_argparse(name: str) -> None:
    positional = POSITIONAL.get(name, [])
    for words in REFUSED:
        assert read_common_words(COMMANDS[name], [*positional, *words]) is None, words
    if positional:  # a missing or non-numeric positional is argparse's to report
        assert read_common_words(COMMANDS[name], []) is None
    if name == "job":
        assert read_common_words(COMMANDS[name], ["seven"]) is None


def test_commands_with_options_of_their_own_always_go_to_argparse() -> None:
    assert read_common_words(COMMANDS["jobs"], ["--socket", "/x"]) is None
    assert read_common_words(COMMANDS["enqueue"], ["noop"]) is None


def test_help_lists_the_commands_in_one_order_whatever_was_loaded_first() -> None:
    # A process that ran `jobs` first has the jobs module's commands registered first.
    program = (
        "import sys;"
        "from addicted_jobs.cli.command import load_commands, listing_order;"
        "load_commands('jobs'); load_commands('request-subtitles');"
        "from addicted_jobs.cli.parser import build_parser;"
        "build_parser().print_help()"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    listed = [
        line.split()[0]
        for line in done.stdout.splitlines()
        if line.startswith("    ") and line[4] != " " and line.split()[0] in COMMANDS
    ]
    expected = [c.name for c in sorted(COMMANDS.values(), key=listing_order) if c.name in MODULES]
    assert listed == expected
    assert listed.index("ping") < listed.index("jobs") < listed.index("storage")


def test_ping_loads_no_argparse_and_no_other_command_module(tmp_path: object) -> None:
    program = (
        "import json, sys;"
        "from addicted_jobs.cli import main;"
        "code = main(['ping', '--socket', sys.argv[1], '--json']);"
        "print(json.dumps({'exit': code, 'modules': sorted(sys.modules)}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, f"{tmp_path}/none.sock"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["exit"] == 3  # unreachable: it ran the whole client path
    modules = result["modules"]
    assert "argparse" not in modules
    assert "addicted_jobs.cli.engine" in modules
    assert not {"addicted_jobs.cli.jobs", "addicted_jobs.cli.subtitles"} & set(modules)


def test_run_builds_only_the_daemon_commands_parser_and_loads_no_socket_command() -> None:
    # The daemon's start: `run` up to its settings (a missing config file ends it there, 78).
    program = (
        "import json, sys;"
        "from addicted_jobs.cli import main;"
        "code = main(['run', '--config', sys.argv[1]]);"
        "print(json.dumps({'exit': code, 'modules': sorted(sys.modules)}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, "/nonexistent/addicted-jobs.toml"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["exit"] == 78, done.stderr
    assert "cannot read the config file" in done.stderr
    loaded = {m for m in result["modules"] if m.startswith("addicted_jobs.cli.")}
    assert loaded == {
        "addicted_jobs.cli.command",
        "addicted_jobs.cli.daemon",
        "addicted_jobs.cli.parser",
    }


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["run", "--config", "/etc/x.toml"], {"command": "run", "config": "/etc/x.toml"}),
        (["demo", "--shows", "50"], {"command": "demo", "shows": 50, "sample_shows": 20}),
        (["systemd-files", "out", "--force"], {"command": "systemd-files", "force": True}),
    ],
)
def test_the_daemon_commands_parse_as_with_the_full_parser(
    words: list[str], expected: dict[str, object]
) -> None:
    alone = vars(build_parser(words[0]).parse_args(words))
    assert alone == vars(build_parser().parse_args(words))
    assert {k: str(alone[k]) if k == "config" else alone[k] for k in expected} == expected
