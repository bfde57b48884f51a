"""Errors raised by the upstream layer (Addic7ed scraping and TMDB).

Callers tell transient trouble (UpstreamUnavailable, NothingToParse) from outcomes that
change data (SubtitleFileDeleted) or credentials (DownloadLimitExceeded) by type alone.
"""

from __future__ import annotations


class UpstreamError(Exception):
    """Base class of every error the upstream layer raises on purpose."""


class NothingToParse(UpstreamError):
    """A page came back without the elements the parser needs.

    Raised for the whole page: a parser never returns part of a page it could not read.
    """

    def __init__(self, page: str, missing: str) -> None:
        self.page = page
        self.missing = missing
        super().__init__(f"nothing to parse in {page}: {missing}")


class UpstreamUnavailable(UpstreamError):
    """The upstream cannot be used right now: circuit open, or retries exhausted."""

    def __init__(self, upstream: str, reason: str) -> None:
        self.upstream = upstream
        self.reason = reason
        super().__init__(f"{upstream} unavailable: {reason}")


class DownloadLimitExceeded(UpstreamError):
    """Addic7ed redirected to /downloadexceeded.php: this credential's daily quota is spent."""

    def __init__(self, download_uri: str, cookie_used: bool) -> None:
        self.download_uri = download_uri
        self.cookie_used = cookie_used
        who = "this credential" if cookie_used else "anonymous downloads"
        super().__init__(f"download limit exceeded for {who} while fetching {download_uri}")


class SubtitleFileDeleted(UpstreamError):
    """Addic7ed redirected a download elsewhere: the subtitle no longer exists upstream."""

    def __init__(self, download_uri: str, location: str) -> None:
        self.download_uri = download_uri
        self.location = location
        super().__init__(f"subtitle {download_uri} was deleted upstream (redirected to {location})")


class DownloadFailed(UpstreamError):
    """A download answered with a status that carries no subtitle (for example a lasting 404).

    The original returned such error pages as if they were the subtitle file.
    """

    def __init__(self, download_uri: str, status: int, attempts: int) -> None:
        self.download_uri = download_uri
        self.status = status
        self.attempts = attempts
        super().__init__(
            f"download of {download_uri} failed: HTTP {status} after {attempts} attempt(s)"
        )


class NotASubtitle(UpstreamError):
    """A download answered 200 with an HTML page (a login or error page), not a subtitle file.

    Retryable: the page is never stored. `what` names the page (its title, type and size).
    """

    def __init__(self, download_uri: str, what: str) -> None:
        self.download_uri = download_uri
        self.what = what
        super().__init__(f"download of {download_uri} answered {what} instead of a subtitle file")


class BodyTooLarge(NothingToParse):
    """A response body over its cap (decoded bytes, counted while reading) or in an encoding we
    do not decode: refused before it is held in memory, and read as a page that cannot be parsed."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(what, reason)
