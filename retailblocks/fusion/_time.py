"""Moments read back from the database, made comparable whatever the database."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back the naive UTC moments it stored; PostgreSQL aware ones. Both become aware."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
