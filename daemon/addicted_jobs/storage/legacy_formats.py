"""The original system's Brotli objects (spec 7.1): signed (`CE B2 CF 81` + raw Brotli), unsigned
(raw Brotli, the fallback when no signature matches) and legacy `name + ".brotli"` objects (raw
Brotli under another key, spec 7.2). Read only: new objects are always written as zstd.

Decoding streams through brotli's Decompressor with an output cap, so a Brotli bomb stops at
`[storage] max_object_bytes` like an oversized zstd frame, without allocating past it.
"""

from __future__ import annotations

import brotli

# Appended to the key by the original's first writer; CompressedStorageProvider falls back to it.
LEGACY_SUFFIX = ".brotli"


class BrotliError(Exception):
    """The bytes are not a complete, well-formed Brotli stream."""


class BrotliTooLarge(Exception):
    """The stream decodes to more than the allowed number of bytes."""


def legacy_key(key: str) -> str:
    """The key under which the original's first writer kept `key` (`key + ".brotli"`)."""
    return key + LEGACY_SUFFIX


def current_key(legacy: str) -> str:
    """The key a legacy `….brotli` object migrates to (spec 1.13: the suffix dropped).
    Raises ValueError for a key without the suffix."""
    if not legacy.endswith(LEGACY_SUFFIX) or len(legacy) == len(LEGACY_SUFFIX):
        raise ValueError(f"{legacy!r} is not a legacy {LEGACY_SUFFIX} key")
    return legacy[: -len(LEGACY_SUFFIX)]


def decompress_brotli(data: bytes | memoryview, max_output_size: int) -> bytes:
    """Decode one raw Brotli stream into at most `max_output_size` bytes.

    Raises BrotliTooLarge past the limit (having produced at most limit + 1 bytes), and
    BrotliError for a stream that is damaged, cut short or followed by other bytes.
    """
    decoder = brotli.Decompressor()
    cap = max_output_size + 1  # one byte more than allowed tells "too large" from "exactly full"
    try:
        out = decoder.process(bytes(data), output_buffer_limit=cap)
        if len(out) >= cap:
            raise BrotliTooLarge(f"Brotli stream decodes past {max_output_size} bytes")
        chunks, total = [out], len(out)
        # The decoder holds back output beyond the cap; drain it, still capped, empty input only.
        while not decoder.can_accept_more_data():
            more = decoder.process(b"", output_buffer_limit=cap - total)
            total += len(more)
            if total >= cap:
                raise BrotliTooLarge(f"Brotli stream decodes past {max_output_size} bytes")
            if not more:
                break
            chunks.append(more)
    except brotli.error as exc:
        raise BrotliError(f"not a well-formed Brotli stream: {exc}") from exc
    if not decoder.is_finished():
        raise BrotliError("Brotli stream is truncated")
    return b"".join(chunks)
