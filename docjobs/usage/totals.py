"""Totals of usage records, whole or grouped by day, operation, tier and status.

Grouped by tier, a job counts (with its input bytes and CPU time) under its own tier, and
its pages under the tiers that read them: a job whose pages several tiers read adds pages
to those tiers' groups without counting as one of their jobs. Every grouping sums to the
same totals.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, get_args

from .records import UsageRecord

GroupName = Literal["day", "operation", "tier", "status"]
GROUPS: tuple[GroupName, ...] = get_args(GroupName)
CSV_COLUMNS = (
    "tenant",
    "day",
    "operation",
    "tier",
    "status",
    "jobs",
    "pages",
    "input_bytes",
    "cpu_seconds",
)


@dataclass
class Totals:
    jobs: int = 0
    complete: int = 0
    failed: int = 0
    cancelled: int = 0
    pages: int = 0
    pages_by_tier: dict[str, int] = field(default_factory=dict)
    input_bytes: int = 0
    cpu_seconds: float = 0.0

    def add(self, line: _Line) -> None:
        if line.record is not None:
            record = line.record
            self.jobs += 1
            setattr(self, record.status, getattr(self, record.status) + 1)
            self.input_bytes += record.input_bytes
            self.cpu_seconds = round(self.cpu_seconds + record.cpu_seconds, 3)
        for tier, pages in line.pages.items():
            self.pages += pages
            self.pages_by_tier[tier] = self.pages_by_tier.get(tier, 0) + pages


@dataclass(frozen=True)
class Group:
    """The totals of the records that share the grouped fields (those not grouped: None)."""

    day: date | None
    operation: str | None
    tier: str | None
    status: str | None
    totals: Totals


@dataclass(frozen=True)
class _Line:
    """A share of a record in one group: its pages of some tiers, and the job itself
    (``record``) in one group only."""

    tier: str
    pages: dict[str, int]
    record: UsageRecord | None


def _lines(record: UsageRecord, by_tier: bool) -> Iterator[tuple[UsageRecord, _Line]]:
    if not by_tier:
        yield record, _Line(record.tier, dict(record.pages), record)
        return
    yield record, _Line(record.tier, {record.tier: record.pages.get(record.tier, 0)}, record)
    for tier, pages in record.pages.items():
        if tier != record.tier:
            yield record, _Line(tier, {tier: pages}, None)


def summarize(
    records: Iterable[UsageRecord], group_by: Sequence[GroupName] = ()
) -> tuple[Totals, list[Group]]:
    """The totals of ``records``, and (with ``group_by``) of each group, in key order."""
    total = Totals()
    groups: dict[tuple[date | None, str | None, str | None, str | None], Totals] = {}
    for record, line in (x for r in records for x in _lines(r, "tier" in group_by)):
        total.add(line)
        if group_by:
            key = (
                record.day if "day" in group_by else None,
                record.operation if "operation" in group_by else None,
                line.tier if "tier" in group_by else None,
                record.status if "status" in group_by else None,
            )
            groups.setdefault(key, Totals()).add(line)
    ordered = sorted(groups.items(), key=lambda item: tuple(str(k or "") for k in item[0]))
    return total, [Group(*key, totals=totals) for key, totals in ordered]


def usage_csv(records: Iterable[UsageRecord]) -> str:
    """Every tenant's usage by day, operation, tier and status, as CSV with a header row."""
    by_tenant: dict[str, list[UsageRecord]] = {}
    for record in records:
        by_tenant.setdefault(record.tenant, []).append(record)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for tenant in sorted(by_tenant):
        _, groups = summarize(by_tenant[tenant], GROUPS)
        for group in groups:
            t = group.totals
            key = (tenant, group.day, group.operation, group.tier, group.status)
            writer.writerow((*key, t.jobs, t.pages, t.input_bytes, f"{t.cpu_seconds:.3f}"))
    return out.getvalue()
