"""Map language labels (Addic7ed names such as "Portuguese (Brazilian)", or codes) to cultures.

Culture names follow .NET's style ("en", "pt-BR", "es-419", "sr-Latn", "zh-Hant"), because they
are stored as Subtitles.LanguageIsoCode and must match what the original system wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

# langcodes and language_data are imported on the first lookup: they cost ~50 ms at start-up.


@dataclass(frozen=True, slots=True)
class Culture:
    english_name: str
    two_letter: str
    name: str


# The original's explicit table (section 9.6), keyed by the lower-cased label. Written out in
# full because langcodes would rename some of them ("tl" becomes Filipino). Names such as "cat"
# and "eus" are kept: they are what the original stored for these labels.
_OVERRIDES: Final[dict[str, Culture]] = {
    "portuguese (brazilian)": Culture("Portuguese (Brazil)", "pt", "pt-BR"),
    "norwegian": Culture("Norwegian", "no", "no"),
    "french (canadian)": Culture("French (Canada)", "fr", "fr-CA"),
    "galego": Culture("Galician", "gl", "gl"),
    "tagalog": Culture("Tagalog", "tl", "tl"),
    "cantonese": Culture("Cantonese", "yue", "yue"),
    "euskera": Culture("Basque", "eu", "eus"),
    "bengali": Culture("Bangla", "bn", "bn"),
    "català": Culture("Catalan", "ca", "cat"),
    "klingon": Culture("Klingon", "tlh", "tlh"),
}

# "Base (Qualifier)": the qualifier is a region ("Spain", "Latin America") or a script ("Latin").
_QUALIFIED: Final = re.compile(r"^(?P<base>[^()]+?)\s*\((?P<qualifier>[^()]+)\)$")
_TAG_LIKE: Final = re.compile(r"^[a-z]{2,3}(?:[-_][a-z0-9]{2,8})*$")
_CACHE_LIMIT: Final = 10_000
_cache: dict[str, Culture] = {}


def _culture(tag: str) -> Culture | None:
    """Build a Culture from a BCP 47 tag, or None when langcodes does not know the language."""
    import langcodes
    from langcodes.tag_parser import LanguageTagError

    try:
        language = langcodes.Language.get(tag)
    except (LanguageTagError, ValueError):
        return None
    if not language.language or language.language == "und" or not language.is_valid():
        return None
    english = language.display_name("en")
    if english.startswith("Unknown language"):
        return None
    return Culture(english_name=english, two_letter=language.language, name=language.to_tag())


def _find_language(label: str) -> str | None:
    import langcodes

    try:
        found: str = langcodes.find(label).to_tag()
    except LookupError:
        return None
    return found


def _qualifier_subtag(qualifier: str) -> str | None:
    from language_data import names as language_names  # type: ignore[import-untyped]

    # Regions first: "Latin America" must not be read as the Latin script.
    for category in ("territory", "script"):
        code: str | None = language_names.name_to_code(category, qualifier, "en")
        if code:
            return code
    return None


def _resolve(label: str) -> Culture | None:
    override = _OVERRIDES.get(label)
    if override is not None:
        return override
    if _TAG_LIKE.match(label):
        # Codes: "en", "pt-br", "eng", "fre", "sr-latn". Normalised the way .NET prints them.
        from_tag = _culture(label.replace("_", "-"))
        if from_tag is not None:
            return from_tag
    qualified = _QUALIFIED.match(label)
    if qualified is not None:
        base = _find_language(qualified["base"])
        subtag = _qualifier_subtag(qualified["qualifier"])
        if base is not None and subtag is not None and "-" not in base:
            composed = _culture(f"{base}-{subtag}")
            if composed is not None:
                return composed
    found = _find_language(label)
    return _culture(found) if found is not None else None


def culture_for(label: str) -> Culture | None:
    """Return the culture a language label or code stands for, or None when it is unknown."""
    key = label.strip().lower()
    if not key or not key.isprintable():
        # A NUL or other control character is no language; langcodes' trie would raise a
        # UnicodeDecodeError about byte 0xff instead of answering "unknown".
        return None
    cached = _cache.get(key)
    if cached is not None:
        return cached
    culture = _resolve(key)
    # Only successes are cached, as in the original: an unknown label costs a lookup each time,
    # and a bounded dict keeps arbitrary input from growing memory forever.
    if culture is not None and len(_cache) < _CACHE_LIMIT:
        _cache[key] = culture
    return culture


def culture_name(label: str) -> str | None:
    """The culture name alone ("pt-BR"), as stored in Subtitles.LanguageIsoCode."""
    culture = culture_for(label)
    return culture.name if culture is not None else None


class UnknownLanguage(ValueError):
    """A label no culture answers to; the one message every entry point gives for it."""

    def __init__(self, language: str) -> None:
        self.language = language
        super().__init__(
            f"unknown language {language!r}: give a language name such as 'English' or "
            "'Portuguese (Brazilian)', or a culture code such as 'en' or 'pt-BR'"
        )


def parse_language(label: str) -> Culture:
    """The culture `label` stands for; raises UnknownLanguage when there is none."""
    culture = culture_for(label)
    if culture is None:
        raise UnknownLanguage(label)
    return culture


def known_language(label: str) -> str:
    """`label` without surrounding blanks, once it is known to name a language: the validator of
    every argument model that takes one (job and socket alike). Raises UnknownLanguage, a
    ValueError, so pydantic reports it as a validation error."""
    parse_language(label)
    return label.strip()
