"""Picking things out of the sandbox's generated catalogue."""

from __future__ import annotations

from addicted_jobs.sandbox.data import Catalogue


def find_href(catalogue: Catalogue, *, deleted: bool) -> str:
    """The download href of the first subtitle that is (or is not) deleted upstream; LookupError
    when the catalogue has none."""
    for show_id in catalogue.show_ids():
        for season in catalogue.seasons(show_id):
            for episode in catalogue.episodes(show_id, season) or ():
                for subtitle in episode.subtitles:
                    if subtitle.deleted == deleted:
                        return subtitle.href
    raise LookupError("no such subtitle in the sandbox catalogue")
