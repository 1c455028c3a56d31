"""``/api/v1/usage``: what the caller's jobs used, by day, operation, tier and status."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, cast

from fastapi import APIRouter, Query
from pydantic import BeforeValidator

from docjobs.backends.base import Backend
from docjobs.config import Settings
from docjobs.usage.quota import MonthlyQuotas
from docjobs.usage.totals import GROUPS, GroupName, Totals, summarize

from ..deps import BackendDep, PrincipalDep
from ..errors import ApiError
from ..schemas import UsageGroup, UsageReport, UsageTotals, error_responses

router = APIRouter(prefix="/api/v1/usage", tags=["usage"], responses=error_responses(401, 422, 503))
MAX_DAYS = 366
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_day(value: object) -> object:
    """A day as YYYY-MM-DD only, not a number of seconds."""
    if isinstance(value, str) and not DAY.fullmatch(value):
        raise ValueError("a day as YYYY-MM-DD, such as 2025-03-01")
    return value


QueryDay = Annotated[date, BeforeValidator(_iso_day)]
GROUP_PATTERN = rf"^({'|'.join(GROUPS)})(,({'|'.join(GROUPS)}))*$"


@router.get(
    "",
    response_model=UsageReport,
    summary="Your usage",
    description="Totals of your jobs that ended from `from` to `to` (UTC days, both included; "
    f"at most {MAX_DAYS} days): jobs by final status, pages, input bytes and runner CPU "
    "seconds, each job counted once, at its end. `group_by` (comma-separated: "
    f"{', '.join(GROUPS)}) adds the totals of each group.",
)
async def get_usage(
    backend: BackendDep,
    principal: PrincipalDep,
    from_day: Annotated[
        QueryDay | None,
        Query(alias="from", description="First day, YYYY-MM-DD (UTC) [the month's first]."),
    ] = None,
    to_day: Annotated[
        QueryDay | None, Query(alias="to", description="Last day, YYYY-MM-DD (UTC) [today].")
    ] = None,
    group_by: Annotated[
        str | None,
        Query(pattern=GROUP_PATTERN, description="Fields to group by, e.g. `day,operation`."),
    ] = None,
) -> UsageReport:
    today = datetime.now(UTC).date()
    last = to_day or today
    first = from_day or last.replace(day=1)
    if first > last:
        raise ApiError(422, "invalid_parameters", f"'from' ({first}) is after 'to' ({last}).")
    if last - first >= timedelta(days=MAX_DAYS):
        raise ApiError(422, "invalid_parameters", f"Ask for at most {MAX_DAYS} days at a time.")
    grouped = [cast(GroupName, name) for name in dict.fromkeys((group_by or "").split(",")) if name]
    records = await backend.usage(principal.tenant, first, last)
    totals, groups = summarize(records, grouped)
    return UsageReport(
        tenant=principal.tenant,
        from_day=first.isoformat(),
        to_day=last.isoformat(),
        group_by=grouped,
        totals=_totals(totals),
        groups=[
            UsageGroup.model_validate(
                {
                    "day": group.day.isoformat() if group.day else None,
                    "operation": group.operation,
                    "tier": group.tier,
                    "status": group.status,
                    **_totals(group.totals).model_dump(),
                }
            )
            for group in groups
        ],
    )


def _totals(totals: Totals) -> UsageTotals:
    return UsageTotals(
        jobs=totals.jobs,
        complete=totals.complete,
        failed=totals.failed,
        cancelled=totals.cancelled,
        pages=totals.pages,
        pages_by_tier=dict(sorted(totals.pages_by_tier.items())),
        input_bytes=totals.input_bytes,
        cpu_seconds=totals.cpu_seconds,
    )


def monthly_quotas(settings: Settings, backend: Backend) -> MonthlyQuotas:
    """The plans' page quotas, counted from the backend's usage records and its jobs."""
    return MonthlyQuotas(settings.usage, backend.quota_month)
