"""Dictionary training proper: train on samples, measure on held-out ones against the current
dictionary (or plain zstd), adopt when it is worth it. Samples in, report out: where the samples
come from (stored subtitles, a directory) is the caller's business.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

from addicted_jobs.storage import compression
from addicted_jobs.storage.compression import Dictionary
from addicted_jobs.storage.store import SubtitleStore


class NotEnoughSamples(ValueError):
    """Fewer samples than TrainingOptions.min_samples were found."""


@dataclass(frozen=True)
class TrainingOptions:
    """How big a dictionary is (bytes), how many samples a training needs, and how much better
    (a size ratio on held-out samples) a dictionary must be to be adopted."""

    dict_size: int = compression.DEFAULT_DICTIONARY_SIZE
    min_samples: int = 20
    held_out_every: int = 10  # every 10th sample measures, the rest train
    min_gain: float = 1.02  # a first dictionary must beat plain zstd by 2% on held-out files
    min_improvement: float = 1.03  # a newer one must beat the current one by 3%


DEFAULT_TRAINING = TrainingOptions()


@dataclass(frozen=True)
class TrainingReport:
    """One training's outcome; sizes in bytes, gains as size ratios (> 1.0 is better)."""

    dictionary_id: int
    dictionary_bytes: int
    trained_on: int
    held_out: int
    gain_vs_plain: float  # plain zstd size / new dictionary size, held-out files
    previous_id: int | None
    gain_vs_previous: float | None  # current dictionary size / new dictionary size
    adopted: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready fields (the socket's answer, the job's log line)."""
        return asdict(self)


def _train_and_measure(
    train: list[bytes],
    held: list[bytes],
    current: Dictionary | None,
    taken: frozenset[int],
    options: TrainingOptions,
    level: int,
) -> tuple[Dictionary, float, float | None]:
    # Trained at TRAINING_LEVEL (scoring candidates at the writing level is ~25x slower for ~1%),
    # measured at the level objects are written at.
    new = compression.build_dictionary(train, options.dict_size, taken_ids=taken)
    gain = compression.evaluate_gain(new, held, level=level)
    previous = compression.evaluate_gain(current, held, level=level) if current else None
    return new, gain, previous


async def train_and_adopt(
    store: SubtitleStore,
    train: list[bytes],
    held: list[bytes],
    *,
    adopt: bool = True,
    options: TrainingOptions = DEFAULT_TRAINING,
) -> TrainingReport:
    """Train a dictionary on `train`, measure it on `held` (stored subtitles the training did not
    see) against the store's current writer, and let the store write with it when `adopt` and it
    beats the writer by `options`. Without `held` it is measured on `train` and never adopted: a
    sample cannot vouch for itself. Trains on a thread; raises CompressionError."""
    current = store.writer
    new, gain, previous = await asyncio.to_thread(
        _train_and_measure,
        train,
        held or train,
        current,
        store.codec.dictionaries.ids(),
        options,
        store.codec.dictionaries.level,
    )
    versus = gain / previous if previous else None
    if versus is None:
        worth, reason = (
            gain >= options.min_gain,
            f"{gain:.3f}x plain zstd (needs {options.min_gain})",
        )
    else:
        worth = versus >= options.min_improvement
        reason = f"{versus:.3f}x the current dictionary (needs {options.min_improvement})"
    if not held:
        # Nothing stored to measure on (its own files would vouch for it): reported, not adopted.
        worth, reason = False, "no stored subtitles to measure it on; store some first"
    adopted = adopt and worth
    if adopted:
        await store.adopt(new, trained_on=len(train), sample_ratio=gain)
    reason = ("adopted" if adopted else "not adopted" if adopt else "dry run") + ": " + reason
    return TrainingReport(
        new.id,
        len(new.data),
        len(train),
        len(held),
        gain,
        current.id if current else None,
        versus,
        adopted,
        reason,
    )
