"""``MESSAGE_RETENTION_DAYS`` as a time: one rule for every table and reader."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.settings import Settings


def cutoff(settings: Settings, now: datetime) -> datetime:
    """What is at or before this is past the retention: exactly ``MESSAGE_RETENTION_DAYS``
    old is gone, in every table (purge) and every read (lists, media, attribution)."""
    return now - timedelta(days=settings.message_retention_days)
