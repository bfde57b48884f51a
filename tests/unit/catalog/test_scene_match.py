"""The scene/file-name token match of FetchSubtitlesJob (spec 1.11), with the original's vectors."""

from __future__ import annotations

import pytest

from addicted_jobs.catalog.scene import scene_matches_file, scene_tokens


@pytest.mark.parametrize(
    ("scene", "file_name", "expected"),
    [
        ("NTb, playWEB, Kitsune", "Show.S01E01.1080p.WEB.playWEB.x264.srt", True),
        ("NTb+playWEB+Kitsune", "Show.S01E01.720p.WEB.Kitsune.mkv", True),
        ("AMZN.WEB-DL", "Show.S01E01.1080p.AMZN.WEBRip.srt", True),
        ("ntb, PLAYWEB", "show.s01e01.PlayWeb.mkv", True),
        ("NTb, playWEB", "Show.S01E01.HDTV.x264.srt", False),
        ("", "Show.S01E01.HDTV.x264.srt", False),
        (", ,", "Show.S01E01.HDTV.x264.srt", False),
    ],
)
def test_original_vectors(scene: str, file_name: str, expected: bool) -> None:
    assert scene_matches_file(scene, file_name) is expected


def test_tokens_split_on_plus_dot_dash_comma_and_drop_blanks() -> None:
    assert scene_tokens(" NTb + playWEB.AMZN-WEB ,, DL ") == ["ntb", "playweb", "amzn", "web", "dl"]
