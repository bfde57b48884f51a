"""The one-time data migrations of the seed (spec 8.1), as code over our schema; each module holds
one or two, and `all_migrations` is what the daemon registers at start-up.
"""

from __future__ import annotations

from typing import Protocol

from addicted_jobs.jobs import OneTimeMigration
from addicted_jobs.onetime_migrations.inboxes import CleanUpInboxUsersMigration, InboxCleaner
from addicted_jobs.onetime_migrations.recurring import RemoveOldCheckCompletedJobMigration
from addicted_jobs.onetime_migrations.timestamps import (
    SetCreatedDateAndUpdatedDateEpisodesMigration,
    SetCreatedDateAndUpdatedDateSubtitlesMigration,
)
from addicted_jobs.onetime_migrations.tvdb_ids import ExternalIdsSource, PopulateTvDbIdsMigration

__all__ = [
    "CleanUpInboxUsersMigration",
    "PopulateTvDbIdsMigration",
    "RemoveOldCheckCompletedJobMigration",
    "SetCreatedDateAndUpdatedDateEpisodesMigration",
    "SetCreatedDateAndUpdatedDateSubtitlesMigration",
    "all_migrations",
]


class MigrationResources(Protocol):
    @property
    def tmdb(self) -> ExternalIdsSource | None: ...

    @property
    def addic7ed(self) -> InboxCleaner: ...


def all_migrations(resources: MigrationResources) -> list[OneTimeMigration]:
    return [
        PopulateTvDbIdsMigration(resources.tmdb),
        SetCreatedDateAndUpdatedDateEpisodesMigration(),
        SetCreatedDateAndUpdatedDateSubtitlesMigration(),
        CleanUpInboxUsersMigration(resources.addic7ed),
        RemoveOldCheckCompletedJobMigration(),
    ]
