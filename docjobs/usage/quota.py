"""Monthly page quotas per plan: a tenant whose plan has one may have at most that many pages
read per calendar month (UTC), counted from its usage records and the pages its jobs not
yet recorded hold (:mod:`.counted`).

A submission is admitted while the pages counted and its own stay within the quota. From
its admission until its job is in the backend, its pages are held here, under the
submission's fingerprint; they go once a count that began after the job was created sees
the job itself. A job of the same fingerprint that a submission would return (its
duplicate) is counted once.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date

from docjobs.config.usage import UsageSettings
from docjobs.domain.clock import utcnow
from docjobs.domain.idempotency import reusable

from .counted import MonthUsage

MonthOf = Callable[[str, date, date], Awaitable[MonthUsage]]
"""A tenant's month as its quota counts it, from its first day to today (UTC)."""


class QuotaExceeded(Exception):
    """A submission the tenant's plan does not allow this month; the message says why."""


@dataclass
class _Held:
    fingerprint: str
    pages: int
    settled_at: int | None = None
    """The tick at which its submission returned (None: still submitting)."""


class MonthlyQuotas:
    def __init__(self, settings: UsageSettings, month_of: MonthOf) -> None:
        self.quotas = settings.monthly_page_quotas
        self.month_of = month_of
        self._held: dict[str, list[_Held]] = {}
        self._ticks = itertools.count()

    async def refusal(self, tenant: str, plan: str, pages: int = 0) -> str | None:
        """Why a submission of ``pages`` pages is refused, or None if the plan allows it."""
        quota = self.quotas.get(plan)
        if quota is None:
            return None
        counted = await self._counted(tenant)
        if counted < quota and counted + pages <= quota:
            return None
        left = max(quota - counted, 0)
        return (
            f"Plan {plan!r} allows {quota} pages a month; {counted} are used this month,"
            f" jobs not ended yet included ({left} left), and this document has {pages}."
            " The quota renews on the first day of next month (UTC)."
        )

    @asynccontextmanager
    async def admitted(
        self, tenant: str, plan: str, pages: int, fingerprint: str
    ) -> AsyncIterator[None]:
        """Around the submission of a document of ``pages`` pages: raises
        :class:`QuotaExceeded` if the plan does not allow it; else its pages are held while
        the job is created, and until a later count sees the job."""
        if plan not in self.quotas:
            yield
            return
        refusal = await self.refusal(tenant, plan, pages)
        if refusal is not None:
            raise QuotaExceeded(refusal)
        # No await since the count: every submission counted after this one sees it.
        held = _Held(fingerprint, pages)
        self._held.setdefault(tenant, []).append(held)
        try:
            yield
        finally:
            held.settled_at = next(self._ticks)

    async def _counted(self, tenant: str) -> int:
        today = utcnow().date()
        started = next(self._ticks)
        month = await self.month_of(tenant, today.replace(day=1), today)
        # A submission that returned before this count began has its job in the backend
        # (or none): the count sees it, and its hold goes.
        held = [
            h for h in self._held.get(tenant, []) if h.settled_at is None or h.settled_at > started
        ]
        if held:
            self._held[tenant] = held
        else:
            self._held.pop(tenant, None)
        known = {job.spec.fingerprint for job in month.unrecorded if reusable(job)}
        waiting = {h.fingerprint: h.pages for h in held if h.fingerprint not in known}
        return month.pages + sum(waiting.values())
