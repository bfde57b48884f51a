"""Generated subtitle files: plausible SRT text for codec and dictionary tests."""

from __future__ import annotations

import random

WORDS = """I you we he she they it what where why how is are was do don't can't know think want
need go come get take tell look right okay yeah no yes well just now here there this that the a
to of in on for with about my your Mom Dad Jack Sarah Detective sir gonna sorry please""".split()


def _timestamp(ms: int) -> str:
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def make_srt(rng: random.Random, cues: int) -> bytes:
    """A plausible subtitle file: CRLF, varied timing and line lengths, some italics."""
    at, out = rng.randint(500, 90_000), []
    for number in range(1, cues + 1):
        start, at = at, at + rng.randint(700, 6000)
        lines = []
        for _ in range(rng.choice((1, 1, 2))):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 9)))
            text = text[0].upper() + text[1:] + rng.choice(".?!,-")
            lines.append(f"<i>{text}</i>" if rng.random() < 0.1 else text)
        out.append(f"{number}\r\n{_timestamp(start)} --> {_timestamp(at)}\r\n" + "\r\n".join(lines))
        at += rng.randint(40, 4000)
    return ("\r\n\r\n".join(out) + "\r\n").encode()
