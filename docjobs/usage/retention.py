"""How long usage records are kept: ``retention_days`` after the day their job ended."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta


def retained_from(retention_days: int, now: datetime) -> date:
    """The first day whose records are kept at ``now``; those of earlier days may go."""
    return now.astimezone(UTC).date() - timedelta(days=retention_days)
