"""addicted-jobs: a durable job daemon for the AddictedProxy subtitle catalogue."""

__version__ = "0.1.0"
