"""The original system's Brotli objects read back (spec 7.1), bounded like zstd frames."""

from __future__ import annotations

import brotli
import pytest

from addicted_jobs.storage import compression as zc
from addicted_jobs.storage.compression import Codec, CorruptObject, ObjectTooLarge
from addicted_jobs.storage.legacy_formats import current_key, legacy_key

TEXT = "1\r\n00:00:01,000 --> 00:00:02,000\r\nÇa va? Ну да. 字幕\r\n\r\n".encode() * 40


def test_signed_and_unsigned_brotli_read_back() -> None:
    raw = brotli.compress(TEXT)
    assert Codec().decompress(zc.BROTLI_SIGNATURE + raw) == TEXT
    assert Codec().decompress(raw) == TEXT  # no signature: the raw Brotli fallback
    assert Codec().decompress_raw_brotli(raw) == TEXT


def test_a_brotli_bomb_is_refused_at_the_limit() -> None:
    bomb = brotli.compress(b"\0" * (64 << 20), quality=11)
    assert len(bomb) < 100_000
    codec = Codec(max_output_size=1 << 20)
    for blob in (bomb, zc.BROTLI_SIGNATURE + bomb):
        with pytest.raises(ObjectTooLarge, match="past 1048576 bytes"):
            codec.decompress(blob)
    with pytest.raises(ObjectTooLarge):
        codec.decompress_raw_brotli(bomb)
    # Exactly at the limit is still fine.
    exact = brotli.compress(b"a" * (1 << 20))
    assert codec.decompress(zc.BROTLI_SIGNATURE + exact) == b"a" * (1 << 20)


@pytest.mark.parametrize("cut", ["truncated", "trailing", "damaged"])
def test_damaged_signed_brotli_is_corrupt(cut: str) -> None:
    raw = brotli.compress(TEXT)
    blob = {
        "truncated": raw[: len(raw) // 2],
        "trailing": raw + b"\x00junk",
        "damaged": raw[:5] + bytes([raw[5] ^ 0xFF]) + raw[6:],
    }[cut]
    with pytest.raises(CorruptObject):
        Codec().decompress(zc.BROTLI_SIGNATURE + blob)


def test_legacy_keys() -> None:
    assert legacy_key("1/2/3/x.srt") == "1/2/3/x.srt.brotli"
    assert current_key("1/2/3/x.srt.brotli") == "1/2/3/x.srt"
    with pytest.raises(ValueError, match="not a legacy"):
        current_key("1/2/3/x.srt")
