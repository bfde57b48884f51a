"""`[storage] zstd_level`: new objects are written at the configured level, and objects written at
any level (or with any dictionary the codec holds) read back byte-identical."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from addicted_jobs.settings import ConfigError, Settings, load_settings
from addicted_jobs.storage import compression as zc
from addicted_jobs.storage.setup import build_codec
from tests.support.subtitles import make_srt


@pytest.fixture(scope="module")
def samples() -> list[bytes]:
    rng = random.Random(19)
    return [make_srt(rng, rng.randint(300, 700)) for _ in range(6)]


def codec_from_file(tmp_path: Path, level: int) -> zc.Codec:
    config = tmp_path / f"level-{level}.toml"
    config.write_text(f"[storage]\nzstd_level = {level}\n")
    return build_codec(load_settings(config))


def test_the_configured_level_writes_the_objects(tmp_path: Path, samples: list[bytes]) -> None:
    sizes = {
        level: sum(len(codec_from_file(tmp_path, level).compress(s)) for s in samples)
        for level in (1, 5, 19)
    }
    # Higher levels search harder: on ~20-45 KB subtitles each step saves several percent.
    assert sizes[19] < sizes[5] * 0.97 < sizes[1] * 0.97, sizes
    # The default is the level the storage benchmark chose, not whatever the codec falls back to.
    assert Settings().storage.zstd_level == zc.DEFAULT_LEVEL
    assert build_codec(Settings()).dictionaries.level == zc.DEFAULT_LEVEL


def test_objects_of_every_level_read_back_byte_identical(samples: list[bytes]) -> None:
    trained = zc.build_dictionary(samples * 4, size=8 * 1024)
    reader = build_codec(Settings(storage={"zstd_level": 3}))
    reader.add_dictionary(trained)
    for level in range(1, 20):
        plain, with_dict = zc.Codec(level=level), zc.Codec([trained], level=level)
        for sample in samples[:2]:
            assert reader.decompress(plain.compress(sample)) == sample, level
            assert reader.decompress(with_dict.compress(sample)) == sample, level


@pytest.mark.parametrize("level", [0, 20, -3])
def test_a_level_out_of_range_is_refused_naming_the_key(tmp_path: Path, level: int) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f"[storage]\nzstd_level = {level}\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    message = str(refused.value)
    assert f"key 'storage.zstd_level' = {level}" in message
    assert ("less than or equal to 19" if level > 19 else "greater than or equal to 1") in message
