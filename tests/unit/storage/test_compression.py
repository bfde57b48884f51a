"""The storage codec: round trips for every format, dictionary selection by frame id, and
refusal of unknown, oversized, hostile and corrupt objects without exhausting memory."""

from __future__ import annotations

import random
import time
import tracemalloc
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from addicted_jobs.storage import compression as zc
from addicted_jobs.storage.compression import Codec, CorruptObject, Dictionary, ObjectTooLarge
from tests.support.subtitles import make_srt

FIXTURES = Path(__file__).resolve().parents[4] / "shared" / "fixtures" / "compression"


def fixture(name: str) -> bytes:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is not on this machine)")
    return path.read_bytes()


@pytest.fixture(scope="module")
def corpus() -> list[bytes]:
    rng = random.Random(20240611)
    return [make_srt(rng, rng.randint(8, 120)) for _ in range(260)]


@pytest.fixture(scope="module")
def trained(corpus: list[bytes]) -> Dictionary:
    return zc.build_dictionary(corpus[:200], size=16 * 1024)


@pytest.fixture(scope="module")
def codec(trained: Dictionary) -> Codec:
    return Codec([trained])


def test_plain_frames_until_a_dictionary_exists(corpus: list[bytes]) -> None:
    codec = Codec()
    assert codec.dictionaries.writer_id is None
    blob = codec.compress(corpus[0])
    params = zstandard.get_frame_parameters(blob)
    assert blob[:4] == b"\x28\xb5\x2f\xfd" and params.dict_id == 0
    assert params.content_size == len(corpus[0]) and params.has_checksum
    assert codec.decompress(blob) == corpus[0]
    assert codec.decompress(codec.compress(b"")) == b""


def test_dictionary_frames_carry_its_id_and_compress_better(
    codec: Codec, trained: Dictionary, corpus: list[bytes]
) -> None:
    held_out = corpus[200:]
    assert codec.dictionaries.writer_id == trained.id
    for sample in held_out:
        blob = codec.compress(sample)
        assert zstandard.get_frame_parameters(blob).dict_id == trained.id
        assert codec.decompress(blob) == sample
    assert zc.evaluate_gain(trained, held_out) > 1.1


def test_reading_the_original_fixtures() -> None:
    sample = fixture("sample.srt")
    codec = Codec(original_dictionary=fixture("srt-dict"))
    signed = fixture("sample.srt.zstd-srtdict")
    assert signed[:8] == zc.ORIGINAL_SIGNATURE + b"\x28\xb5\x2f\xfd"
    # The original writer left out the content size: decoding is bounded by the block scan.
    assert zstandard.get_frame_parameters(signed[4:]).content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert codec.decompress(signed) == sample
    assert codec.decompress(fixture("sample.srt.zstd-plain")) == sample
    assert Codec().decompress(fixture("sample.srt.zstd-plain")) == sample


def _like_the_original(dictionary: bytes, data: bytes) -> bytes:
    zdict = zstandard.ZstdCompressionDict(dictionary)
    cctx = zstandard.ZstdCompressor(5, zdict, write_checksum=False, write_content_size=False)
    return zc.ORIGINAL_SIGNATURE + cctx.compress(data)


def test_original_format_round_trip(corpus: list[bytes]) -> None:
    original = fixture("srt-dict")
    codec = Codec(original_dictionary=original)
    for sample in corpus[:20]:
        assert codec.decompress(_like_the_original(original, sample)) == sample


def test_original_format_without_its_dictionary_names_the_id() -> None:
    with pytest.raises(zc.UnknownDictionary) as caught:
        Codec().decompress(fixture("sample.srt.zstd-srtdict"))
    assert caught.value.dict_id == zc.ORIGINAL_DICTIONARY_ID
    assert str(zc.ORIGINAL_DICTIONARY_ID) in str(caught.value) and "configure" in str(caught.value)
    original = Dictionary.from_bytes(fixture("srt-dict"))
    assert original.id == zc.ORIGINAL_DICTIONARY_ID
    with pytest.raises(ValueError, match="read-only"):
        Codec().add_dictionary(original)


def test_unknown_dictionary_id_is_named(codec: Codec, trained: Dictionary) -> None:
    blob = codec.compress(b"1\r\n00:00:01,000 --> 00:00:02,000\r\nHello.\r\n")
    with pytest.raises(zc.UnknownDictionary) as caught:
        Codec().decompress(blob)
    assert caught.value.dict_id == trained.id and str(trained.id) in str(caught.value)


def test_old_dictionaries_keep_reading_after_a_newer_one(corpus: list[bytes]) -> None:
    first = zc.build_dictionary(corpus[:100], size=8 * 1024)
    second = zc.build_dictionary(corpus[100:200], size=8 * 1024, taken_ids=[first.id])
    assert first.id != second.id
    codec = Codec([first])
    old_blob = codec.compress(corpus[0])
    codec.add_dictionary(second)
    new_blob = codec.compress(corpus[0])
    assert zstandard.get_frame_parameters(new_blob).dict_id == second.id
    assert Codec([first, second]).decompress(old_blob) == corpus[0]
    assert Codec([first, second]).decompress(new_blob) == corpus[0]
    with pytest.raises(zc.UnknownDictionary, match=str(first.id)):
        Codec([second]).decompress(old_blob)


def test_declared_size_over_the_limit_is_refused_before_decoding() -> None:
    blob = Codec().compress(bytes(5000))
    with pytest.raises(ObjectTooLarge, match="5000"):
        Codec(max_output_size=4999).decompress(blob)
    assert Codec(max_output_size=5000).decompress(blob) == bytes(5000)
    with pytest.raises(ObjectTooLarge):
        Codec(max_output_size=4999).compress(bytes(5000))


def _bomb(kind: str) -> bytes:
    """1 GiB in a few KB: zeros (RLE blocks), with or without a declared size, or a repeated
    random pattern (compressed blocks, whose output only decoding reveals)."""
    declared = kind == "declared zeros"
    cctx = zstandard.ZstdCompressor(level=1, write_content_size=declared)
    writer = cctx.compressobj(size=1 << 30 if declared else -1)
    chunk = bytes(1 << 20) if "zeros" in kind else random.Random(5).randbytes(4096) * 256
    return b"".join([*(writer.compress(chunk) for _ in range(1024)), writer.flush()])


@pytest.mark.parametrize("kind", ["declared zeros", "undeclared zeros", "undeclared pattern"])
def test_zstd_bomb_is_refused_without_allocating_it(kind: str) -> None:
    bomb = _bomb(kind)
    assert len(bomb) < 2_000_000
    limit = 4 * 1024 * 1024
    codec = Codec(max_output_size=limit)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ObjectTooLarge):
            codec.decompress(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < limit + 1024 * 1024
    assert time.perf_counter() - started < 5


def test_many_small_blocks_without_declared_size_still_decode() -> None:
    # 2000 flushed blocks could each hold 128 KiB, far over the limit; the real output is not.
    writer = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    lines = [f"{n}\r\nline number {n}\r\n".encode() for n in range(2000)]
    flush = zstandard.COMPRESSOBJ_FLUSH_BLOCK
    blob = b"".join(writer.compress(line) + writer.flush(flush) for line in lines) + writer.flush()
    assert Codec(max_output_size=1024 * 1024).decompress(blob) == b"".join(lines)


def test_oversized_window_is_refused() -> None:
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=25, write_content_size=0)
    writer = zstandard.ZstdCompressor(compression_params=params).compressobj()
    blob = writer.compress(b"x" * 1000) + writer.flush()
    with pytest.raises(ObjectTooLarge, match="window"):
        Codec().decompress(blob)


def _lying_about_size(data: bytes) -> bytes:
    blob = zstandard.ZstdCompressor(write_checksum=False).compress(data)
    # A single-segment frame with a 2-byte size field right after the descriptor byte.
    assert blob[4] & 0xE0 == 0x60
    forged = blob[:5] + (len(data) - 256 - 10).to_bytes(2, "little") + blob[7:]
    assert zstandard.get_frame_parameters(forged).content_size == len(data) - 10
    return forged


def _corruptions() -> list[tuple[str, bytes]]:
    good = Codec().compress(make_srt(random.Random(7), 40))
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x40
    return [
        ("truncated", good[:-7]),
        ("bit flip", bytes(flipped)),
        ("trailing garbage", good + b"\x00junk"),
        ("second frame", good + good),
        ("header only", good[:6]),
        ("lying size", _lying_about_size(b"subtitle text " * 100)),
    ]


@pytest.mark.parametrize(("name", "blob"), _corruptions(), ids=[n for n, _ in _corruptions()])
def test_corrupt_objects_are_refused(name: str, blob: bytes) -> None:
    with pytest.raises(CorruptObject):
        Codec().decompress(blob)


def test_damaged_frames_without_declared_size_are_refused(corpus: list[bytes]) -> None:
    # The original writer adds no checksum, so only structural damage is detectable there.
    signed = _like_the_original(fixture("srt-dict"), corpus[0])
    codec = Codec(original_dictionary=fixture("srt-dict"))
    for bad in (signed[:-5], signed + b"\x01", signed + signed[4:], signed[:-1] + b"\xff\xff"):
        with pytest.raises(CorruptObject):
            codec.decompress(bad)


@pytest.mark.parametrize("blob", [b"", b"hello world"])
def test_other_formats_are_unsupported(blob: bytes) -> None:
    # No signature, and the Brotli fallback does not decode either.
    with pytest.raises(zc.UnsupportedFormat, match="not a Brotli stream"):
        Codec().decompress(blob)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=20_000))
def test_round_trip_property(codec: Codec, data: bytes) -> None:
    assert codec.decompress(codec.compress(data)) == data
    assert Codec().decompress(Codec().compress(data)) == data


@settings(max_examples=50, deadline=None)
@given(text=st.text(max_size=3000))
def test_original_format_round_trip_property(text: str) -> None:
    original, data = fixture("srt-dict"), text.encode()
    codec = Codec(original_dictionary=original)
    assert codec.decompress(_like_the_original(original, data)) == data


@settings(max_examples=300, deadline=None)
@given(tail=st.binary(max_size=200))
def test_arbitrary_bytes_after_the_magic_only_raise_compression_errors(tail: bytes) -> None:
    for prefix in (b"\x28\xb5\x2f\xfd", zc.ORIGINAL_SIGNATURE + b"\x28\xb5\x2f\xfd"):
        try:
            Codec(max_output_size=1 << 20).decompress(prefix + tail)
        except zc.CompressionError:
            pass


@given(seed=st.binary(max_size=32), taken=st.sets(st.integers(0, 2**32), max_size=20))
def test_dictionary_ids_are_unreserved_and_collision_free(seed: bytes, taken: set[int]) -> None:
    chosen = zc.choose_dictionary_id(seed, taken)
    assert 32768 <= chosen < 2**31 and chosen not in taken and chosen != zc.ORIGINAL_DICTIONARY_ID
    assert zc.choose_dictionary_id(seed, taken) == chosen  # deterministic
    assert zc.choose_dictionary_id(seed, taken | {chosen}) != chosen


def test_dictionary_validation(trained: Dictionary) -> None:
    with pytest.raises(ValueError, match="carry id"):
        Dictionary(trained.id + 1, trained.data)
    assert Dictionary.from_bytes(trained.data) == trained
    with pytest.raises(ValueError, match="original"):
        Codec(original_dictionary=trained.data)
    with pytest.raises(zc.CompressionError):
        zc.build_dictionary([])
    with pytest.raises(ValueError):
        Codec(level=22)


def test_compressor_is_reused_until_a_new_dictionary(trained: Dictionary) -> None:
    codec = Codec()
    plain = codec.dictionaries.compressor()
    codec.compress(b"a")
    assert codec.dictionaries.compressor() is plain
    codec.add_dictionary(trained)
    assert codec.dictionaries.compressor() is not plain
    reader = codec.dictionaries.decompressor(trained.id)
    assert codec.dictionaries.decompressor(trained.id) is reader
    assert codec.dictionaries.ids() == {trained.id}
