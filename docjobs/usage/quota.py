"""Monthly page quotas per plan: a tenant whose plan has one may have at most that many pages
read per calendar month (UTC), counted from its usage records.

The pages a tenant used this month are read at most every ``fresh_seconds`` per process and
the pages each accepted submission brings are added meanwhile, so a burst of submissions is
counted without a read each. A job counts for good once it ended (its record): after a read,
the pages of jobs still running are not counted until they end, so a tenant may pass its
quota by the jobs it has running at once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from docjobs.config.usage import UsageSettings

PagesOf = Callable[[str, date, date], Awaitable[int]]
"""A tenant's pages from one day to another (both included), from its usage records."""


@dataclass
class _Used:
    pages: int
    read_at: float
    month: date


class MonthlyQuotas:
    def __init__(self, settings: UsageSettings, pages_of: PagesOf) -> None:
        self.quotas = settings.monthly_page_quotas
        self.fresh_seconds = settings.quota_fresh_seconds
        self.pages_of = pages_of
        self._used: dict[str, _Used] = {}

    async def refusal(self, tenant: str, plan: str, pages: int) -> str | None:
        """Why a submission of ``pages`` pages is refused, or None if the plan allows it."""
        quota = self.quotas.get(plan)
        if quota is None:
            return None
        used = await self._pages_used(tenant)
        if used < quota and used + pages <= quota:
            return None
        left = max(quota - used, 0)
        return (
            f"Plan {plan!r} allows {quota} pages a month; {used} are used this month"
            f" ({left} left) and this document has {pages}. The quota renews on the first"
            " day of next month (UTC)."
        )

    def accepted(self, tenant: str, pages: int) -> None:
        """A submission of ``pages`` pages was accepted: counted until the next read."""
        used = self._used.get(tenant)
        if used is not None:
            used.pages += pages

    async def _pages_used(self, tenant: str) -> int:
        today = datetime.now(UTC).date()
        month = today.replace(day=1)
        used = self._used.get(tenant)
        now = time.monotonic()
        if used is None or used.month != month or now - used.read_at > self.fresh_seconds:
            used = _Used(await self.pages_of(tenant, month, today), now, month)
            self._used[tenant] = used
        return used.pages
