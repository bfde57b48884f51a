"""Telling a downloaded subtitle file from an HTML page served in its place (200 text/html).

Addic7ed answers a spent quota with a 302 to /downloadexceeded.php, but it (or a proxy in front of
it) may also answer 200 with a page: the limit page itself, a login page, an error page. Stored,
such a page would stay for good (stored subtitles are never downloaded again), so it is refused.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser

from addicted_jobs.upstream.errors import DownloadLimitExceeded, NotASubtitle

_BOM = b"\xef\xbb\xbf"
_SNIFF = 64 * 1024  # a limit or login page says what it is well before this
# What a limit page says: a link or redirect to downloadexceeded.php, or words to that effect.
_LIMIT = re.compile(
    r"downloadexceeded|daily\s+download|download\s+(?:limit|count|quota)"
    r"|download[^<]{0,80}exceeded|exceeded[^<]{0,80}download",
    re.IGNORECASE,
)
_SPACE = re.compile(r"\s+")


def is_html_page(body: bytes) -> bool:
    """True when `body` starts (after a BOM and whitespace) with a doctype or `<html`.

    No subtitle format starts so: SRT starts with a cue number, WebVTT with "WEBVTT", ASS with
    "[Script Info]". The Content-Type is not trusted either way.
    """
    head = body[:512]
    head = head.removeprefix(_BOM).lstrip(b" \t\r\n\f").lower()
    return head.startswith((b"<!doctype html", b"<html"))


def check_subtitle_body(
    download_uri: str, body: bytes, content_type: str, *, cookie_used: bool
) -> None:
    """Raise when a 200 download answer is an HTML page rather than the subtitle file.

    A limit page raises DownloadLimitExceeded (the caller rotates credentials as for the 302);
    any other page raises NotASubtitle naming its title, Content-Type and size (bytes).
    """
    if not is_html_page(body):
        return
    text = body[:_SNIFF].decode("utf-8", errors="replace")
    if _LIMIT.search(text):
        raise DownloadLimitExceeded(download_uri, cookie_used=cookie_used)
    document = LexborHTMLParser(text)
    node = document.css_first("title") or document.css_first("h1") or document.body
    label = _SPACE.sub(" ", node.text(deep=True)).strip()[:80] if node is not None else ""
    kind = content_type.split(";")[0].strip() or "no Content-Type"
    raise NotASubtitle(download_uri, f"an HTML page {label!r} ({kind}, {len(body)} bytes)")
