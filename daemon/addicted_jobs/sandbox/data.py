"""Deterministic fake catalogue behind the sandbox: Addic7ed shows, seasons, subtitles, pages, SRT.

Everything is derived on demand from (seed, ids) by hashing, so 100,000 shows cost nothing until
asked for. TMDB entries live in sandbox.tmdb; show names are chosen so the mapper rules apply.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from addicted_jobs.sandbox.tmdb import SPECIAL_SHOWS, stable_hash, tv_variants

_ADJECTIVES = (
    "Silent Broken Golden Hidden Last Little Lost Dark Bright Wild Crimson Frozen Secret Quiet "
    "Burning Hollow Iron Northern Restless Savage Scarlet Shattered Sleeping Stolen Sunken "
    "Twisted Velvet Wicked Winter Young Ancient Bitter Blue Cold Distant Electric Empty Endless "
    "Fallen Final Glass Gentle Grand Green Haunted Honest Lonely Midnight Perfect Rogue Silver"
).split()
_NOUNS = (
    "Harbor Kingdom Valley Empire Signal Garden Witness Frontier Station Island Republic River "
    "Academy Agency Border Bridge Canyon Castle Circle City Coast Colony Court Crown Desert "
    "District Dynasty Estate Factory Family Forest Fortress Hotel Hunter Justice Legacy Manor "
    "Mission Nation Orchard Palace Precinct Prison Ranch Road Saints Shore Summit Tower"
).split()
_TAILS = (
    "",
    *(
        "Chronicles Files Diaries Project Protocol Legacy Saga Confidential Rising Reborn Tales "
        "Stories Unit Squad Club Society Affair Code Conspiracy Experiment Games Heist Hours Law "
        "Lies Nights Origins Pact Rules Secrets Sessions Trials Wars Years Blues Days Dreams Ends "
        "Gambit Ghosts Girls Kids Rebels Shadows Sisters Brothers"
    ).split(),
)
_FOREIGN = ("{} ‼", "Тайны: {}", "{} (비밀의 숲)", "{}‼ Ёлки", "한국 {}", "Город {}")
_NAME_SPACE = len(_ADJECTIVES) * len(_NOUNS) * len(_TAILS)
_TITLE_WORDS = (
    "Pilot Reckoning Homecoming Exodus Ghosts Crossroads Blackout Truth Dare Lockdown Fallout "
    "Echoes Inheritance Vigil Undertow Riptide Safe Haven Checkmate Aftermath Revelation"
).split()
_SCENES = (
    "NTb playWEB Kitsune KILLERS DIMENSION LOL SVA AVS FLUX CAKES GOSSIP ION10 AMZN.WEB-DL "
    "NF.WEB-DL WEB-DL WEB HDTV 720p.HDTV BluRay SuccessfulCrab MiNX EDITH GGEZ FENiX SYNCOPY"
).split()
# (Addic7ed language id, label): the labels Addic7ed shows; English carries most subtitles.
LANGUAGES: tuple[tuple[int, str], ...] = (
    (1, "English"), (8, "French"), (4, "Spanish (Spain)"), (6, "Spanish (Latin America)"),
    (10, "Portuguese"), (9, "Portuguese (Brazilian)"), (7, "Italian"), (11, "German"),
    (17, "Dutch"), (23, "Polish"), (26, "Romanian"), (31, "Croatian"), (36, "Serbian (Latin)"),
    (35, "Serbian (Cyrillic)"), (41, "Chinese (Traditional)"), (24, "Chinese (Simplified)"),
    (38, "Arabic"), (12, "Català"), (13, "Euskera"), (14, "Galego"), (22, "Hebrew"),
    (27, "Greek"), (18, "Swedish"), (29, "Norwegian"), (21, "Turkish"), (20, "Hungarian"),
    (19, "Russian"), (46, "Bulgarian"), (52, "Persian"), (45, "Vietnamese"), (32, "Japanese"),
    (42, "Korean"), (37, "Indonesian"), (40, "Malay"), (50, "Thai"), (51, "Ukrainian"),
    (53, "French (Canadian)"), (47, "Bengali"), (59, "Klingon"), (30, "Czech"),
)  # fmt: skip
# Languages whose sample lines Latin-1 can encode.
_LATIN_1 = frozenset({"English", "French", "Spanish (Spain)", "Portuguese (Brazilian)", "German"})
_LINES = {
    "English": "Where were you last night?|We don't have much time.|I told you this would happen.|"
    "Get in the car.|You have to trust me.|That's not what I meant.|Nobody leaves this room.|"
    "It's over, isn't it?|I'll be right back.|What did you just say?|Keep your voice down.",
    "French": "Où étais-tu hier soir ?|On n'a pas beaucoup de temps.|Fais-moi confiance.|C'est fini.",
    "Spanish (Spain)": "¿Dónde estabas anoche?|No tenemos mucho tiempo.|Confía en mí.|Se acabó.",
    "Portuguese (Brazilian)": "Onde você estava ontem?|Não temos muito tempo.|Confie em mim.|Acabou.",
    "German": "Wo warst du gestern Abend?|Wir haben nicht viel Zeit.|Vertrau mir.|Es ist vorbei.",
}


@dataclass(frozen=True, slots=True)
class FakeSubtitle:
    language_id: int
    language: str
    scene: str
    version: int
    completion: float  # 100.0 when complete
    hearing_impaired: bool
    corrected: bool
    hd: bool
    href: str
    deleted: bool


@dataclass(frozen=True, slots=True)
class FakeEpisode:
    season: int
    number: int
    title: str
    episode_id: int
    subtitles: tuple[FakeSubtitle, ...]


def episode_id_for(show_id: int, season: int, number: int) -> int:
    # Decodable, so a download href leads back to its season without any index.
    return show_id * 100_000 + season * 1000 + number


class Catalogue:
    """N shows with ids 1, 3, 5, ... (even ids do not exist); everything else computed lazily."""

    def __init__(self, shows: int, seed: int) -> None:
        if not 1 <= shows <= _NAME_SPACE:
            raise ValueError(f"shows must be between 1 and {_NAME_SPACE}")
        self.size = shows
        self.seed = seed

    def show_ids(self) -> range:
        return range(1, 2 * self.size, 2)

    def has_show(self, show_id: int) -> bool:
        return show_id % 2 == 1 and 0 < show_id < 2 * self.size

    def show_name(self, show_id: int) -> str:
        index = show_id // 2
        if index < len(SPECIAL_SHOWS):
            return SPECIAL_SHOWS[index]
        # An affine permutation of the name space: unique names, not in alphabetical order.
        j = (index * 7919 + self.seed * 104_729) % _NAME_SPACE
        adjective, j = _ADJECTIVES[j % len(_ADJECTIVES)], j // len(_ADJECTIVES)
        noun, j = _NOUNS[j % len(_NOUNS)], j // len(_NOUNS)
        base = f"The {adjective} {noun}" + (f" {_TAILS[j]}" if _TAILS[j] else "")
        # A few names carry the qualifiers the TMDB mapper reads, consistent with sandbox.tmdb.
        variants = tv_variants(self.seed, base)
        roll = stable_hash(self.seed, "suffix", show_id) % 100
        if variants is None or roll >= 9:
            # Some names are not ASCII, as on the real list (Cyrillic, Korean, "‼").
            script = stable_hash(self.seed, "script", show_id) % (4 * len(_FOREIGN))
            return _FOREIGN[script].format(base) if script < len(_FOREIGN) else base
        (year0, country0), (year1, country1) = variants
        if roll < 5:
            return f"{base} ({year0 if roll % 2 else year1})"
        if roll < 8:
            country = country0 if roll % 2 else country1
            return f"{base} ({'UK' if country == 'GB' else country})"
        return f"BBC {base}"

    def seasons(self, show_id: int) -> list[int]:
        if not self.has_show(show_id):
            return []
        roll = stable_hash(self.seed, "seasons", show_id)
        # One generic show in forty has no season yet; the hand-written ones always have some.
        empty = roll % 40 == 0 and show_id // 2 >= len(SPECIAL_SHOWS)
        return [] if empty else list(range(1, 2 + roll % 9))

    def episodes(self, show_id: int, season: int) -> tuple[FakeEpisode, ...] | None:
        if season not in self.seasons(show_id):
            return None
        return _season(self.seed, show_id, season)

    def subtitle_by_href(self, href: str) -> tuple[FakeEpisode, FakeSubtitle] | None:
        parts = href.strip("/").split("/")
        try:
            episode_id = int(parts[-2])
        except (ValueError, IndexError):
            return None
        show_id, rest = divmod(episode_id, 100_000)
        episodes = self.episodes(show_id, rest // 1000) or ()
        for episode in episodes:
            if episode.episode_id == episode_id:
                for subtitle in episode.subtitles:
                    if subtitle.href == href:
                        return episode, subtitle
        return None


@functools.lru_cache(maxsize=512)
def _season(seed: int, show_id: int, season: int) -> tuple[FakeEpisode, ...]:
    rng = random.Random(stable_hash(seed, "season", show_id, season))
    episodes = []
    for number in range(1, rng.randint(6, 22) + 1):
        episode_id = episode_id_for(show_id, season, number)
        subtitles: list[FakeSubtitle] = []
        for version in range(rng.randint(1, 3)):
            groups = rng.sample(_SCENES, rng.choice((1, 1, 2, 3, 3, 8)))
            if rng.random() < 0.05:
                groups[0] = "WEB-DL & HDTV"  # written raw in the page, as Addic7ed does
            scene = "+".join(groups) if rng.random() < 0.8 else " + ".join(groups)
            hd = rng.random() < 0.5
            others = rng.sample(LANGUAGES[1:], rng.choice((0, 0, 1, 2, 4)))
            for language_id, language in ((1, "English"), *others):
                original = language_id == 1 and rng.random() < 0.25
                href = (
                    f"/original/{episode_id}/{version}"
                    if original
                    else f"/updated/{language_id}/{episode_id}/{version}"
                )
                done, untouched = rng.random() < 0.88, rng.random() < 0.1
                subtitles.append(
                    FakeSubtitle(
                        language_id=language_id,
                        language=language,
                        scene=scene,
                        version=version,
                        completion=(
                            100.0
                            if done
                            else 0.0
                            if untouched
                            else round(rng.uniform(1.0, 99.99), 2)
                        ),
                        hearing_impaired=rng.random() < 0.15,
                        corrected=rng.random() < 0.2,
                        hd=hd,
                        href=href,
                        deleted=stable_hash(seed, "deleted", href) % 20 == 0,
                    )
                )
        title = " ".join(rng.sample(_TITLE_WORDS, rng.choice((1, 2))))
        episodes.append(FakeEpisode(season, number, title, episode_id, tuple(subtitles)))
    return tuple(episodes)


def srt_charset(seed: int, subtitle: FakeSubtitle) -> str:
    """How the file is encoded: "utf-8-sig" (a BOM), "latin-1" or "utf-8".

    The Content-Type names no charset for a Latin-1 file, as Addic7ed serves old uploads.
    """
    roll = stable_hash(seed, "encoding", subtitle.href) % 10
    if roll < 2:
        return "utf-8-sig"
    if roll < 4 and subtitle.language in _LATIN_1:
        return "latin-1"
    return "utf-8"


def srt_text(seed: int, subtitle: FakeSubtitle) -> bytes:
    """A plausible SRT file, the bytes as served: varied timings and lines, some italics, CRLF
    line ends; in UTF-8, UTF-8 with a BOM or Latin-1 (see srt_charset).
    """
    return srt_lines(seed, subtitle).encode(srt_charset(seed, subtitle))


def srt_lines(seed: int, subtitle: FakeSubtitle) -> str:
    """The text of srt_text, decoded."""
    rng = random.Random(stable_hash(seed, "srt", subtitle.href))
    lines = _LINES.get(subtitle.language, _LINES["English"]).split("|")
    cues = max(3, int(rng.randint(40, 120) * subtitle.completion / 100))
    clock, blocks = rng.uniform(1.0, 6.0), []
    for index in range(1, cues + 1):
        start, clock = clock, clock + rng.uniform(0.8, 5.5)
        text = [rng.choice(lines) for _ in range(rng.choice((1, 1, 2)))]
        if len(text) == 2 and rng.random() < 0.4:
            text = [f"- {line}" for line in text]
        if rng.random() < 0.12:
            text = [f"<i>{line}</i>" for line in text]
        blocks.append("\r\n".join([str(index), f"{_stamp(start)} --> {_stamp(clock)}", *text]))
        clock += rng.uniform(0.1, 3.0)
    return "\r\n\r\n".join(blocks) + "\r\n"


def _stamp(seconds: float) -> str:
    millis = int(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"
