"""zstd compression of stored subtitles: trained dictionaries chosen by the frame's dictionary
id, plain frames, and the original system's signed dictionary frames, with bounded output."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import zstandard

from addicted_jobs.storage.legacy_formats import BrotliError, BrotliTooLarge, decompress_brotli

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# The original system prefixes its dictionary frames with this signature (its `ZstdSrtDict`).
ORIGINAL_SIGNATURE = b"\xef\x2f\xaa\xa1"
ORIGINAL_DICTIONARY_ID = 1856178741
BROTLI_SIGNATURE = b"\xce\xb2\xcf\x81"

# Subtitles arrive at the upstream's pace (2/s), so writing speed is nearly free: 19 makes the
# smallest objects and still compresses an 80 KB file in ~25 ms (bench/storage_levels.py).
DEFAULT_LEVEL = 19
# Training scores candidate dictionaries by compressing at this level: at 19 it took 25x longer
# (548 s against 22 s on 100 files) for objects 1.2% smaller, so training stays at 5.
TRAINING_LEVEL = 5
DEFAULT_MAX_OUTPUT_SIZE = 64 * 1024 * 1024
# Decoders allocate the window a frame declares: 8 MiB covers level 19 on any object size.
DEFAULT_MAX_WINDOW_SIZE = 8 * 1024 * 1024
# Not the original's 110 KiB: on files < 10 KB it gained 1.21x over plain, 256 KiB 1.31x (bench).
DEFAULT_DICTIONARY_SIZE = 256 * 1024

# RFC 8878 reserves dictionary ids below 32768 and from 2**31 up.
_FIRST_FREE_ID = 32768
_LAST_FREE_ID = 2**31 - 1
_BLOCK_MAX = 128 * 1024  # the most one block regenerates
_FULLDICT = zstandard.DICT_TYPE_FULLDICT


class CompressionError(Exception):
    """Base of every refusal to compress or decompress."""


class UnknownDictionary(CompressionError):
    """The frame names a dictionary that is not loaded."""

    def __init__(self, dict_id: int, hint: str = "") -> None:
        self.dict_id = dict_id
        super().__init__(f"object needs zstd dictionary id {dict_id}, which is not loaded{hint}")


class CorruptObject(CompressionError):
    """The bytes are not a well-formed frame, fail the checksum, or carry trailing bytes."""


class UnsupportedFormat(CompressionError):
    """Neither zstd nor Brotli: no known signature, and not a Brotli stream either."""


class ObjectTooLarge(CompressionError):
    """Decoding would exceed the configured output or window limit."""


@dataclass(frozen=True)
class Dictionary:
    """A zstd dictionary and the id written into every frame it compresses."""

    id: int
    data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        embedded = zstandard.ZstdCompressionDict(self.data).dict_id()
        if embedded != self.id:
            raise ValueError(f"dictionary bytes carry id {embedded}, not {self.id}")

    @classmethod
    def from_bytes(cls, data: bytes) -> Dictionary:
        """Wrap a zstd dictionary file, reading its id from its header."""
        dict_id = zstandard.ZstdCompressionDict(data).dict_id()
        if dict_id == 0:
            raise ValueError("not a zstd dictionary (no dictionary id in its header)")
        return cls(dict_id, data)


class DictionarySet:
    """Dictionaries by id, each with a decompressor built once; one compressor for the newest.
    Digesting a dictionary costs more than compressing a typical subtitle, hence the reuse.
    zstandard objects are not thread safe: use this from one thread (the event loop)."""

    def __init__(
        self, level: int = DEFAULT_LEVEL, *, checksum: bool = True, max_window_size: int = 8 << 20
    ) -> None:
        self.level = level
        self._checksum = checksum
        self._max_window_size = max_window_size
        self._decompressors: dict[int, zstandard.ZstdDecompressor] = {
            0: zstandard.ZstdDecompressor(max_window_size=max_window_size)
        }
        self._writer_id: int | None = None
        self._compressor = self._new_compressor(None)

    def _new_compressor(self, zdict: Any) -> zstandard.ZstdCompressor:
        # The content size lets a reader refuse an oversized object before decoding it.
        cs = self._checksum
        return zstandard.ZstdCompressor(
            self.level, zdict, write_checksum=cs, write_content_size=True
        )

    def add(self, dictionary: Dictionary, *, write: bool = True) -> None:
        """Load a dictionary for reading; with `write`, it also becomes the one we write with."""
        zdict = zstandard.ZstdCompressionDict(dictionary.data, dict_type=_FULLDICT)
        self._decompressors[dictionary.id] = zstandard.ZstdDecompressor(
            dict_data=zdict, max_window_size=self._max_window_size
        )
        if write:
            zdict.precompute_compress(level=self.level)
            self._compressor = self._new_compressor(zdict)
            self._writer_id = dictionary.id

    @property
    def writer_id(self) -> int | None:
        """Id of the dictionary new frames are written with; None means plain frames."""
        return self._writer_id

    def ids(self) -> frozenset[int]:
        return frozenset(self._decompressors) - {0}

    def compressor(self) -> zstandard.ZstdCompressor:
        return self._compressor

    def decompressor(self, dict_id: int) -> zstandard.ZstdDecompressor:
        """The decompressor for frames carrying `dict_id` (0: no dictionary)."""
        try:
            return self._decompressors[dict_id]
        except KeyError:
            original = dict_id == ORIGINAL_DICTIONARY_ID
            hint = " (the original system's dictionary: configure its path)" if original else ""
            raise UnknownDictionary(dict_id, hint) from None


class Codec:
    """Compress for storage and decompress whatever format an object was stored in."""

    def __init__(
        self,
        dictionaries: Iterable[Dictionary] = (),
        *,
        level: int = DEFAULT_LEVEL,
        original_dictionary: bytes | None = None,
        max_output_size: int = DEFAULT_MAX_OUTPUT_SIZE,
        max_window_size: int = DEFAULT_MAX_WINDOW_SIZE,
        checksum: bool = True,
    ) -> None:
        """`dictionaries` oldest first: the last one is written with. Levels above 19 need
        windows beyond what readers accept by default."""
        if not 1 <= level <= 19:
            raise ValueError(f"zstd level must be within 1..19, got {level}")
        if max_output_size <= 0:
            raise ValueError("max_output_size must be positive")
        self.max_output_size = max_output_size
        self._max_window_size = max_window_size
        self.dictionaries = DictionarySet(level, checksum=checksum, max_window_size=max_window_size)
        if original_dictionary is not None:
            original = Dictionary.from_bytes(original_dictionary)
            if original.id != ORIGINAL_DICTIONARY_ID:
                raise ValueError(f"dictionary {original.id} is not the original system's")
            self.dictionaries.add(original, write=False)
        for dictionary in dictionaries:
            self.add_dictionary(dictionary)

    def add_dictionary(self, dictionary: Dictionary) -> None:
        """Load a newer dictionary; it becomes the one new objects are written with."""
        if dictionary.id == ORIGINAL_DICTIONARY_ID:
            raise ValueError("the original system's dictionary is read-only here")
        self.dictionaries.add(dictionary, write=True)

    def compress(self, data: bytes) -> bytes:
        """One zstd frame with content size, checksum and (when we have one) dictionary id."""
        if len(data) > self.max_output_size:
            raise ObjectTooLarge(f"{len(data)} bytes: over max_output_size, unreadable later")
        return self.dictionaries.compressor().compress(data)

    def decompress(self, blob: bytes) -> bytes:
        """Decode an object in any supported format, never producing more than the limit.
        Signatures are tried longest first; without one, the bytes are raw Brotli (spec 7.1)."""
        if blob[:4] not in (ORIGINAL_SIGNATURE, ZSTD_MAGIC):
            return self._decompress_brotli(blob)
        frame, signed = _strip_signature(blob)
        try:
            params = zstandard.get_frame_parameters(frame)
        except zstandard.ZstdError as exc:
            raise CorruptObject(f"unreadable zstd frame header: {exc}") from exc
        # The signature alone identifies the original dictionary if a writer left the id out.
        dict_id = params.dict_id or (ORIGINAL_DICTIONARY_ID if signed else 0)
        dctx = self.dictionaries.decompressor(dict_id)
        if params.window_size > self._max_window_size:
            raise ObjectTooLarge(f"frame declares a {params.window_size}-byte window: too large")
        if params.content_size == zstandard.CONTENTSIZE_UNKNOWN:
            return self._decompress_unsized(dctx, frame, params)
        if params.content_size > self.max_output_size:
            raise ObjectTooLarge(f"frame declares {params.content_size} bytes: over the limit")
        try:
            # The declared size is the allocation; a frame lying about it fails to decode.
            return dctx.decompress(frame, allow_extra_data=False)
        except zstandard.ZstdError as exc:
            raise CorruptObject(f"zstd frame does not decode: {exc}") from exc

    def decompress_raw_brotli(self, blob: bytes) -> bytes:
        """A legacy `….brotli` object: raw Brotli whatever its first bytes (spec 7.2)."""
        return self._brotli(memoryview(blob), "legacy Brotli object")

    def _decompress_brotli(self, blob: bytes) -> bytes:
        if blob[:4] == BROTLI_SIGNATURE:
            return self._brotli(memoryview(blob)[4:], "signed Brotli object")
        try:
            return self._brotli(memoryview(blob), "")
        except CorruptObject:
            start = blob[:8].hex(" ") or "nothing"
            raise UnsupportedFormat(
                f"no zstd or Brotli signature and not a Brotli stream: starts with {start}"
            ) from None

    def _brotli(self, data: memoryview, what: str) -> bytes:
        try:
            return decompress_brotli(data, self.max_output_size)
        except BrotliTooLarge as exc:
            raise ObjectTooLarge(f"{what or 'Brotli object'}: {exc}") from exc
        except BrotliError as exc:
            raise CorruptObject(f"{what or 'Brotli object'}: {exc}") from exc

    def _decompress_unsized(
        self, dctx: zstandard.ZstdDecompressor, frame: memoryview, params: zstandard.FrameParameters
    ) -> bytes:
        # Without a declared size, the block headers still bound the output: refuse what
        # surely exceeds the limit, and never give the decoder a buffer beyond the limit.
        known, bound = _scan_blocks(frame, params)
        if known > self.max_output_size:
            raise ObjectTooLarge(f"frame holds at least {known} bytes: over the limit")
        limit = max(1, min(bound, self.max_output_size))
        try:
            return dctx.decompress(frame, max_output_size=limit, allow_extra_data=False)
        except zstandard.ZstdError as exc:
            # The frame is structurally complete, so running short can only mean too much output.
            if bound > self.max_output_size and "did not decompress full frame" in str(exc):
                raise ObjectTooLarge(f"frame decodes past {self.max_output_size} bytes") from exc
            raise CorruptObject(f"zstd frame does not decode: {exc}") from exc


def _scan_blocks(frame: memoryview, params: zstandard.FrameParameters) -> tuple[int, int]:
    """(least, most) bytes a frame decodes to, from its block headers (RFC 8878 3.1.1.2).
    Raises CorruptObject if the frame is cut short or followed by other bytes."""
    block_max = min(_BLOCK_MAX, params.window_size)
    pos, known, bound = zstandard.frame_header_size(frame), 0, 0
    while True:
        if pos + 3 > len(frame):
            raise CorruptObject("zstd frame is truncated")  # before its last block
        header = int.from_bytes(frame[pos : pos + 3], "little")
        kind, size = (header >> 1) & 3, header >> 3
        if kind == 3 or size > block_max:
            raise CorruptObject(f"invalid zstd block header at offset {pos}")
        pos += 3 + (1 if kind == 1 else size)
        known += size if kind < 2 else 0
        bound += size if kind < 2 else block_max
        if header & 1:
            break
    if params.has_checksum:
        pos += 4
    if pos != len(frame):
        raise CorruptObject(
            "zstd frame is " + ("truncated" if pos > len(frame) else "followed by junk")
        )
    return known, bound


def _strip_signature(blob: bytes) -> tuple[memoryview, bool]:
    view = memoryview(blob)
    if blob[:4] == ORIGINAL_SIGNATURE:
        return view[4:], True
    if blob[:4] == ZSTD_MAGIC:
        return view, False
    raise UnsupportedFormat(f"not a zstd object: starts with {blob[:8].hex(' ') or 'nothing'}")


def choose_dictionary_id(seed: bytes, taken: Iterable[int] = ()) -> int:
    """An unreserved id derived from `seed`, avoiding `taken` and the original's id."""
    avoid = {ORIGINAL_DICTIONARY_ID, *taken}
    span = _LAST_FREE_ID - _FIRST_FREE_ID + 1
    digest = int.from_bytes(hashlib.sha256(seed).digest()[:8], "big")
    for probe in range(len(avoid) + 1):
        candidate = _FIRST_FREE_ID + (digest + probe) % span
        if candidate not in avoid:
            return candidate
    raise AssertionError("unreachable: more probes than taken ids")


def build_dictionary(
    samples: Sequence[bytes],
    size: int = DEFAULT_DICTIONARY_SIZE,
    *,
    level: int = TRAINING_LEVEL,
    taken_ids: Iterable[int] = (),
) -> Dictionary:
    """Train a dictionary on `samples`; its id is derived from them and avoids `taken_ids`."""
    if not samples:
        raise CompressionError("cannot train a dictionary without samples")
    seed = b"".join(hashlib.sha256(sample).digest() for sample in samples)
    dict_id = choose_dictionary_id(seed, taken_ids)
    try:
        trained = zstandard.train_dictionary(
            size, list(samples), dict_id=dict_id, level=level, threads=-1
        )
    except zstandard.ZstdError as exc:
        raise CompressionError(f"training on {len(samples)} samples failed: {exc}") from exc
    return Dictionary(trained.dict_id(), trained.as_bytes())


def evaluate_gain(
    dictionary: Dictionary, held_out: Iterable[bytes], *, level: int = DEFAULT_LEVEL
) -> float:
    """Plain zstd size over dictionary size of `held_out`, file by file: > 1.0 means it helps."""
    dictionaries = DictionarySet(level, checksum=False)
    plain = dictionaries.compressor()
    dictionaries.add(dictionary)
    with_dict = dictionaries.compressor()
    plain_total = dict_total = 0
    for sample in held_out:
        plain_total += len(plain.compress(sample))
        dict_total += len(with_dict.compress(sample))
    if dict_total == 0:
        raise ValueError("evaluate_gain needs at least one held-out sample")
    return plain_total / dict_total
