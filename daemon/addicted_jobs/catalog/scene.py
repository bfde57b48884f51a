"""Does a subtitle's scene (release groups) fit a video file name? The token match of spec 1.11."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[+.\-,]")


def scene_tokens(scene: str) -> list[str]:
    """Lower-cased release tokens of a scene string: "NTb+playWEB" -> ["ntb", "playweb"]."""
    tokens = (token.strip() for token in _SEPARATORS.split(scene.lower()))
    return [token for token in tokens if token]


def scene_matches_file(scene: str, file_name: str) -> bool:
    """True when any scene token appears in the file name, ignoring case."""
    name = file_name.lower()
    return any(token in name for token in scene_tokens(scene))
