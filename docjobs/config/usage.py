"""The ``usage`` section: what usage metering exposes and what it bounds."""

from __future__ import annotations

from pydantic import BaseModel, Field


class UsageSettings(BaseModel):
    """Usage metering (``DOCJOBS_USAGE__*``): every finished job is counted whatever these say."""

    tenant_metrics: bool = False
    """Also count pages and jobs per tenant in Prometheus
    (``docjobs_tenant_usage_pages_total``, ``docjobs_tenant_usage_jobs_total``): one series
    per tenant, operation, tier and status, so off by default."""
    monthly_page_quotas: dict[str, int] = Field(default_factory=dict)
    """Pages a tenant of each plan may have read per calendar month (UTC), e.g.
    ``{"free": 500}``; a plan not named here has no quota. A submission that would pass it
    is refused with ``429 quota_exceeded``."""
    quota_fresh_seconds: float = Field(default=10.0, ge=0)
    """Seconds; in Kubernetes mode, how long an API process reuses a tenant's recorded pages
    of the month (an object-store listing) before reading them again for the quota check.
    Embedded mode reads them for each check (one indexed query)."""
    retention_days: int = Field(default=400, ge=1)
    """Days a usage record is kept after the day its job ended (400: a year of bills and a
    month to spare); older records are deleted by a periodic sweep (embedded: the server's
    expiry sweep; Kubernetes: the operator's, hourly)."""
