"""Storage benchmark on a generated SRT corpus: ratio and speed of plain zstd-5, our trained
dictionary and the original one (if present) next to the zstd CLI, and end-to-end store
throughput to local files and to moto's S3 server on loopback. One JSON line per measurement.
The level sweep on real-shaped files that chose `[storage] zstd_level`: bench/storage_levels.py."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import re
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from addicted_jobs.storage import compression as zc
from addicted_jobs.storage.base import Storage, object_key
from addicted_jobs.storage.local import LocalStorage
from addicted_jobs.storage.s3 import S3Storage

ORIGINAL_DICT = Path(__file__).resolve().parents[2] / "shared/fixtures/compression/srt-dict"
SMALL = 10 * 1024
MB = 1_000_000  # the zstd CLI's unit
WORDS = """you I the to a it and that what is of me we this in he know no don't have your for my
be it's on do not just was I'm are with can get here all so that's there right what's but him up
go out they she like now if about one come gonna yeah want okay oh think her how see at well did
got us why from you're let's going can't back look need who tell take something really time been
could good when sorry never by mean would them where or should thank then his our some way over
make only thing please because man wait love guys said maybe sure talk call hey give yes""".split()
PHRASES = """I don't know|What are you doing|Are you okay|I'm sorry|Thank you|Come on|Let's go
Oh, my God|What happened|I need to talk to you|We have to go|Get out of here|What do you mean
I told you|You know what|Where are you going|Don't worry|It's okay|Hold on|Shut up|Wait a minute
Listen to me|I love you|What's going on|I have no idea|You have to|I think we should|I want you to
Do you want to|I'll be right back|What the hell|I'm fine|Of course|Good night|How are you|Yeah
No, no, no|Excuse me|Look at me|Are you sure|I don't think so|I don't care|It's not your fault
I'm gonna|Do you know|right now|all right|a little bit|last night|the other day|on the phone|Okay
Well|So|Look|Please|Sir|Uh|Hey|What is it|Who are you|Help me""".replace("\n", "|").split("|")
SOUNDS = "door opens|phone ringing|sighs|laughs|gunshot|music playing|chatter|groans".split("|")
SYLLABLES = "ka ro mi len dar tho bel vin sa ric ash mor el ty jen hal nor qui zed fa".split()
EDITORS = "explosiveskull n17t01 elderman ScruffyJanitor GoldenBeard VitoSilans honeybunny".split()
ZIPF = list(itertools.accumulate(1 / (rank + 8) for rank in range(len(WORDS))))


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _stamp(ms: int) -> str:
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def _clause(rng: random.Random, names: list[str]) -> str:
    if rng.random() < 0.45:
        return rng.choice(PHRASES)
    words = []
    for _ in range(max(1, int(rng.gammavariate(2.0, 1.8)))):
        roll = rng.random()
        if roll < 0.03:
            words.append(rng.choice(names))
        elif roll < 0.06:  # rare words no dictionary can know
            words.append("".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))))
        else:
            words.append(rng.choices(WORDS, cum_weights=ZIPF)[0])
    return " ".join(words)


def _sentence(rng: random.Random, names: list[str]) -> str:
    parts = [_clause(rng, names) for _ in range(rng.choice((1, 1, 1, 2, 2, 3)))]
    if rng.random() < 0.08:
        parts.append(rng.choice(names))
    text = (", " if rng.random() < 0.5 else " ").join(parts)
    return text[0].upper() + text[1:] + rng.choice([".", ".", ".", "?", "?", "!", "...", ","])


def _cue_lines(rng: random.Random, names: list[str]) -> list[str]:
    roll = rng.random()
    if roll < 0.04:
        return [f"[{rng.choice(SOUNDS)}]"]
    if roll < 0.14:  # two speakers in one cue
        return [f"- {_sentence(rng, names)}", f"- {_sentence(rng, names)}"]
    text, lines = _sentence(rng, names), []
    cut = text.rfind(" ", 0, 42)
    if len(text) > 42 and cut > 0:  # wrap at 42 columns, as subtitle editors do
        lines, text = [text[:cut]], text[cut + 1 :]
    lines.append(text)
    return [f"<i>{line}</i>" for line in lines] if rng.random() < 0.08 else lines


def make_srt(rng: random.Random, names: list[str], cues: int) -> bytes:
    at, blocks = rng.randint(1_000, 120_000), []
    for number in range(1, cues + 1):
        lines = _cue_lines(rng, names)
        duration = int(600 + 55 * sum(map(len, lines)) * rng.uniform(0.7, 1.4))
        timing = f"{_stamp(at)} --> {_stamp(at + duration)}"
        blocks.append(f"{number}\r\n{timing}\r\n" + "\r\n".join(lines))
        at += duration + int(rng.expovariate(1 / 1800)) + 40
    if rng.random() < 0.6:  # most Addic7ed files carry the editor's credit
        credit = f"Sync and corrections by {rng.choice(EDITORS)}\r\nwww.addic7ed.com"
        blocks.append(f"{cues + 1}\r\n{_stamp(at)} --> {_stamp(at + 3000)}\r\n{credit}")
    bom = "\ufeff" if rng.random() < 0.2 else ""
    return (bom + "\r\n\r\n".join(blocks) + "\r\n\r\n").encode()


def make_corpus(seed: int, shows: int, per_show: int) -> list[list[bytes]]:
    """Per show, its own character names; 40% short files (forced or partial subtitles)."""
    rng = random.Random(seed)
    corpus = []
    for _ in range(shows):
        names = ["".join(rng.choices(SYLLABLES, k=3)).capitalize() for _ in range(12)]
        cues = [
            rng.randint(*(15, 110) if rng.random() < 0.4 else (350, 900)) for _ in range(per_show)
        ]
        corpus.append([make_srt(rng, names, n) for n in cues])
    return corpus


def best_mb_s(run: Callable[[], object], nbytes: int, min_seconds: float) -> float:
    """Throughput of the fastest of repeated passes (the machine may be shared)."""
    best, spent, passes = float("inf"), 0.0, 0
    while spent < min_seconds or passes < 3:
        started = time.perf_counter()
        run()
        took = time.perf_counter() - started
        best, spent, passes = min(best, took), spent + took, passes + 1
    return round(nbytes / best / MB, 1)


def zstd_cli(files: list[Path], dictionary: Path | None) -> dict[str, float] | None:
    """`zstd -b5`: in memory, each file compressed on its own, single-threaded, best of runs."""
    if (exe := shutil.which("zstd")) is None:
        return None
    cmd = [exe, "-b5", "-i3", "--single-thread", *(["-D", str(dictionary)] if dictionary else [])]
    out = subprocess.run([*cmd, *map(str, files)], capture_output=True, text=True, check=True)
    found = re.findall(r"\(x([\d.]+)\),\s*([\d.]+) MB/s,\s*([\d.]+) MB/s", out.stdout + out.stderr)
    ratio, packed, unpacked = map(float, found[-1])
    return {"ratio": ratio, "compress_mb_s": packed, "decompress_mb_s": unpacked}


def bench_codecs(
    train: list[bytes], test: list[bytes], work: Path, args: argparse.Namespace
) -> zc.Dictionary:
    started = time.perf_counter()
    trained = zc.build_dictionary(train, size=args.dict_size or zc.DEFAULT_DICTIONARY_SIZE)
    row = {"bench": "train", "dict_id": trained.id, "dict_bytes": len(trained.data)}
    row |= {"samples": len(train), "sample_bytes": sum(map(len, train))}
    emit(**row, seconds=round(time.perf_counter() - started, 1))
    (work / "trained.dict").write_bytes(trained.data)
    # name -> (compress, decompress, dictionary file for the CLI), all through our own code
    # Level 5 on purpose: these rows compare with `zstd -b5` (the level sweep and the daemon's
    # default are bench/storage_levels.py's).
    plain, ours = zc.Codec(level=5), zc.Codec([trained], level=5)
    codecs: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes], Path | None]] = {
        "zstd-5-plain": (plain.compress, plain.decompress, None),
        "zstd-5-trained-dict": (ours.compress, ours.decompress, work / "trained.dict"),
    }
    if ORIGINAL_DICT.exists():
        writer = zc.DictionarySet(5)  # the Codec never writes with it; the benchmark may
        writer.add(zc.Dictionary.from_bytes(ORIGINAL_DICT.read_bytes()))
        reader = zc.Codec(original_dictionary=ORIGINAL_DICT.read_bytes())
        entry = (writer.compressor().compress, reader.decompress, ORIGINAL_DICT)
        codecs["zstd-5-original-dict"] = entry
    classes = {"<10KB": [f for f in test if len(f) < SMALL]}
    classes[">=10KB"] = [f for f in test if len(f) >= SMALL]
    paths: dict[str, list[Path]] = {}
    for n, (size_class, files) in enumerate(classes.items()):
        paths[size_class] = [work / f"{n}-{i}.srt" for i in range(len(files))]
        for path, data in zip(paths[size_class], files, strict=True):
            path.write_bytes(data)
    ratio: dict[tuple[str, str], float] = {}
    vs_cli: dict[tuple[str, str], float] = {}
    runs = itertools.product(codecs.items(), classes.items())
    for (codec, (compress, decompress, dict_file)), (size_class, files) in runs:
        total, blobs = sum(map(len, files)), [compress(f) for f in files]
        assert [decompress(b) for b in blobs] == files, codec
        ratio[codec, size_class] = total / sum(map(len, blobs))
        seconds = args.min_seconds
        # The lambdas run before the loop moves on, so late binding is harmless.
        packed = best_mb_s(lambda: [compress(f) for f in files], total, seconds)  # noqa: B023
        unpacked = best_mb_s(lambda: [decompress(b) for b in blobs], total, seconds)  # noqa: B023
        cli = None if args.no_cli else zstd_cli(paths[size_class], dict_file)
        if cli:
            vs_cli[codec, size_class] = round(packed / cli["compress_mb_s"], 3)
        gain = ratio[codec, size_class] / ratio["zstd-5-plain", size_class]
        row = {"bench": "compression", "codec": codec, "size_class": size_class}
        row |= {"files": len(files), "input_bytes": total}
        row |= {"ratio": round(ratio[codec, size_class], 3), "gain_vs_plain": round(gain, 3)}
        row |= {"compress_mb_s": packed, "decompress_mb_s": unpacked, "cli": cli}
        emit(**row, compress_vs_cli=vs_cli.get((codec, size_class)))
    small, small_bytes = classes["<10KB"], sum(map(len, classes["<10KB"]))
    reused = best_mb_s(lambda: [ours.compress(f) for f in small], small_bytes, args.min_seconds)
    # What reuse saves: building the compressor (digesting the dictionary) on every call.
    rebuilt = best_mb_s(
        lambda: [zc.Codec([trained], level=5).compress(f) for f in small], small_bytes, 0
    )
    row = {"bench": "reuse", "codec": "zstd-5-trained-dict", "size_class": "<10KB"}
    row |= {"reused_compress_mb_s": reused, "rebuilt_per_call_compress_mb_s": rebuilt}
    emit(**row, speedup=round(reused / rebuilt, 1))
    gain = ratio["zstd-5-trained-dict", "<10KB"] / ratio["zstd-5-plain", "<10KB"]
    worst = min(vs_cli.values(), default=None)
    row = {"bench": "targets", "trained_gain_under_10kb": round(gain, 3), "gain_target": 1.3}
    row |= {"gain_met": gain >= 1.3, "worst_compress_vs_cli": worst, "throughput_target": 0.8}
    emit(**row, throughput_met=None if worst is None else worst >= 0.8)
    return trained


MOTO = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server in its own process (not competing for our GIL), on loopback."""
    pipe, null = subprocess.PIPE, subprocess.DEVNULL  # its request log is noise here
    proc = subprocess.Popen([sys.executable, "-c", MOTO], stdin=pipe, stdout=pipe, stderr=null)
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(60):
                raise RuntimeError("moto server did not start within 60 s")
        yield f"http://127.0.0.1:{int(proc.stdout.readline())}"
    finally:
        proc.kill()
        proc.wait()


async def round_trip(name: str, storage: Storage, codec: zc.Codec, files: list[bytes]) -> None:
    """Compress and put every file, then get and decompress them all, 16 at a time."""
    gate = asyncio.Semaphore(16)
    keys = [object_key(n // 40, n // 10 % 4, n % 10, uuid.UUID(int=n)) for n in range(len(files))]

    async def put(key: str, data: bytes) -> None:
        async with gate:
            await storage.put(key, codec.compress(data))

    async def get(key: str) -> bytes:
        async with gate:
            blob = await storage.get(key)
        assert blob is not None, key
        return codec.decompress(blob)

    started = time.perf_counter()
    await asyncio.gather(*(put(k, f) for k, f in zip(keys, files, strict=True)))
    stored, started = time.perf_counter() - started, time.perf_counter()
    assert await asyncio.gather(*(get(k) for k in keys)) == files
    loaded, total = time.perf_counter() - started, sum(map(len, files))
    count, mb = len(files), total / MB
    row = {"bench": "store", "backend": name, "objects": count, "input_bytes": total}
    row |= {"concurrency": 16, "put_objects_per_s": round(count / stored, 1)}
    row |= {"put_input_mb_s": round(mb / stored, 2), "get_objects_per_s": round(count / loaded, 1)}
    emit(**row, get_input_mb_s=round(mb / loaded, 2))


async def bench_store(files: list[bytes], codec: zc.Codec, work: Path, no_s3: bool) -> None:
    await round_trip("local", LocalStorage(work / "local"), codec, files)
    if no_s3:
        return
    with moto_server() as endpoint:
        s3 = S3Storage(endpoint, "bench", "us-east-1", "key", "secret", create_bucket=True)
        async with s3:
            await round_trip("s3-moto", s3, codec, files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1856)
    parser.add_argument("--shows", type=int, default=40, help="a quarter are held out for testing")
    parser.add_argument("--dict-size", type=int, default=None, help="default: the daemon's")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="per speed measurement")
    parser.add_argument("--no-cli", action="store_true", help="skip the zstd command line")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 end-to-end run")
    args = parser.parse_args()
    corpus = make_corpus(args.seed, args.shows, per_show=30)
    held_out = max(1, args.shows // 4)
    # ~500 files (12 MB) is about 100x the dictionary size, as zstd advises.
    train = [f for show in corpus[:-held_out] for f in show][:500]
    test = [f for show in corpus[-held_out:] for f in show]
    row = {"bench": "corpus", "seed": args.seed, "shows": args.shows, "held_out_shows": held_out}
    row |= {"train_files": len(train), "test_files": len(test), "test_bytes": sum(map(len, test))}
    row |= {"test_files_under_10kb": sum(len(f) < SMALL for f in test)}
    emit(**row, zstd_cli=shutil.which("zstd"), original_dictionary=ORIGINAL_DICT.exists())
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        trained = bench_codecs(train, test, Path(tmp), args)
        stored = test[:300]
        asyncio.run(bench_store(stored, zc.Codec([trained]), Path(tmp), args.no_s3))


if __name__ == "__main__":
    main()
