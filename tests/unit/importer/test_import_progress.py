"""What the import shows while it runs, and the command's usage errors."""

from __future__ import annotations

import io
import time

import pytest

from addicted_jobs import cli
from addicted_jobs.cli.importer import summary
from addicted_jobs.importer import progress as progress_module
from addicted_jobs.importer.progress import Progress
from addicted_jobs.importer.run import ImportReport
from addicted_jobs.importer.table import TableReport


def test_plain_lines_give_rows_rate_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 102.0, 110.0, 110.0, 111.0])
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    shown = Progress(out, bar=False)
    shown.start("Subtitles", 1000, done=200)  # 200 copied by an earlier run
    shown.advance(100)  # 2 s in: below the 5 s between lines
    shown.advance(300)  # 10 s in: a line
    shown.finish()
    lines = out.getvalue().splitlines()
    assert lines[0] == "import: Subtitles 600/1000 rows (60.0%), 40 rows/s, ETA 10 s"
    assert lines[1].startswith("import: Subtitles 600/1000 rows (60.0%)")
    assert progress_module.PLAIN_EVERY_S == 5.0


def test_a_terminal_gets_a_bar() -> None:
    out = io.StringIO()
    shown = Progress(out, bar=True)
    shown.start("Episodes", 50)
    shown.advance(50)
    shown.note("a note")
    shown.finish()
    text = out.getvalue()
    assert "Episodes" in text and "100%" in text and "rows/s" in text and "a note" in text


def test_the_summary_names_skipped_tables_and_refusals() -> None:
    report = ImportReport(
        tables=[TableReport("TvShows", 3, copied=2, skipped=1, seconds=1.0)],
        migrations_source=2,
        migrations_copied=2,
        skipped_tables=["SuperSubtitlesState"],
        seconds=1.5,
    )
    text = summary(report)
    assert "not imported (no equivalent here): SuperSubtitlesState" in text
    assert "1 rows refused" in text and "done in 1.5 s" in text


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--batch-size", "0"], "--batch-size takes 1 to 1000000"), (["--lanes", "9"], "--lanes")],
)
def test_bad_options_are_usage_errors(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["import-addictedproxy", "--from", "postgresql://x@127.0.0.1:9/none", *flags]
    assert cli.main([*argv, "--socket", "/nonexistent"]) == cli.EXIT_USAGE
    assert message in capsys.readouterr().err
