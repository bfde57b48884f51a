"""Language labels and codes to .NET-style culture names, on real Addic7ed labels."""

from __future__ import annotations

import pytest

from addicted_jobs.catalog.languages import Culture, culture_for, culture_name
from addicted_jobs.sandbox.data import LANGUAGES

# Addic7ed's own labels and the culture name the original stored for each.
ADDIC7ED_LABELS = [
    ("English", "en"),
    ("French", "fr"),
    ("Spanish (Latin America)", "es-419"),
    ("Spanish (Spain)", "es-ES"),
    ("Portuguese", "pt"),
    ("Portuguese (Brazilian)", "pt-BR"),
    ("Serbian (Latin)", "sr-Latn"),
    ("Serbian (Cyrillic)", "sr-Cyrl"),
    ("Chinese (Traditional)", "zh-Hant"),
    ("Chinese (Simplified)", "zh-Hans"),
    ("Català", "cat"),
    ("Euskera", "eus"),
    ("Galego", "gl"),
    ("Norwegian", "no"),
    ("French (Canadian)", "fr-CA"),
    ("Arabic", "ar"),
    ("Bulgarian", "bg"),
    ("Croatian", "hr"),
    ("Czech", "cs"),
    ("Danish", "da"),
    ("Dutch", "nl"),
    ("Finnish", "fi"),
    ("German", "de"),
    ("Greek", "el"),
    ("Hebrew", "he"),
    ("Hungarian", "hu"),
    ("Indonesian", "id"),
    ("Italian", "it"),
    ("Japanese", "ja"),
    ("Korean", "ko"),
    ("Malay", "ms"),
    ("Persian", "fa"),
    ("Polish", "pl"),
    ("Romanian", "ro"),
    ("Russian", "ru"),
    ("Slovak", "sk"),
    ("Slovenian", "sl"),
    ("Swedish", "sv"),
    ("Thai", "th"),
    ("Turkish", "tr"),
    ("Ukrainian", "uk"),
    ("Vietnamese", "vi"),
    ("Bengali", "bn"),
    ("Tagalog", "tl"),
    ("Klingon", "tlh"),
    ("Cantonese", "yue"),
    ("Bosnian", "bs"),
    ("Macedonian", "mk"),
    ("Albanian", "sq"),
    ("Estonian", "et"),
    ("Latvian", "lv"),
    ("Lithuanian", "lt"),
    ("Icelandic", "is"),
    ("Hindi", "hi"),
    ("Tamil", "ta"),
    ("Armenian", "hy"),
    ("Georgian", "ka"),
    ("Welsh", "cy"),
    ("Irish", "ga"),
    ("Azerbaijani", "az"),
    ("Belarusian", "be"),
    ("Swahili", "sw"),
    ("Urdu", "ur"),
]


@pytest.mark.parametrize(("label", "name"), ADDIC7ED_LABELS)
def test_addic7ed_label(label: str, name: str) -> None:
    culture = culture_for(label)
    assert culture is not None, label
    assert culture.name == name


def test_enough_labels_are_covered() -> None:
    assert len(ADDIC7ED_LABELS) >= 40


@pytest.mark.parametrize(
    ("label", "culture"),
    [
        ("English", Culture("English", "en", "en")),
        ("Spanish (Latin America)", Culture("Spanish (Latin America)", "es", "es-419")),
        ("Serbian (Latin)", Culture("Serbian (Latin)", "sr", "sr-Latn")),
        ("Chinese (Simplified)", Culture("Chinese (Simplified)", "zh", "zh-Hans")),
        # Overrides keep the original's names, with sensible English names and 2-letter codes.
        ("Portuguese (Brazilian)", Culture("Portuguese (Brazil)", "pt", "pt-BR")),
        ("Català", Culture("Catalan", "ca", "cat")),
        ("Euskera", Culture("Basque", "eu", "eus")),
        ("Tagalog", Culture("Tagalog", "tl", "tl")),
        ("Klingon", Culture("Klingon", "tlh", "tlh")),
    ],
)
def test_whole_culture(label: str, culture: Culture) -> None:
    assert culture_for(label) == culture


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("en", "en"),
        ("pt-br", "pt-BR"),
        ("PT-BR", "pt-BR"),
        ("eng", "en"),
        ("fre", "fr"),
        ("fra", "fr"),
        ("sr-latn", "sr-Latn"),
        ("zh_hant", "zh-Hant"),
        ("es-419", "es-419"),
    ],
)
def test_codes(code: str, name: str) -> None:
    assert culture_name(code) == name


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("ENGLISH", "en"),
        ("  english ", "en"),
        ("portuguese (BRAZILIAN)", "pt-BR"),
        ("English (UK)", "en-GB"),
        ("Portuguese (Portugal)", "pt-PT"),
        ("Spanish (Argentina)", "es-AR"),
        ("Chinese (Cantonese)", "yue"),
        ("Farsi", "fa"),
    ],
)
def test_case_whitespace_and_other_spellings(label: str, name: str) -> None:
    assert culture_name(label) == name


@pytest.mark.parametrize("label", ["", "   ", "Elvish", "xx", "qaa", "und", "Blorp (Zork)"])
def test_unknown_labels(label: str) -> None:
    assert culture_for(label) is None
    assert culture_name(label) is None


def test_successful_lookups_are_cached() -> None:
    assert culture_for("Serbian (Cyrillic)") is culture_for("serbian (cyrillic)")


def test_every_sandbox_language_is_known() -> None:
    unknown = [label for _, label in LANGUAGES if culture_for(label) is None]
    assert unknown == []


def test_equality_uses_all_three_fields() -> None:
    assert Culture("English", "en", "en") != Culture("English", "en", "en-US")
    with pytest.raises(AttributeError):
        Culture("English", "en", "en").name = "fr"  # type: ignore[misc]
