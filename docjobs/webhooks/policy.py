"""Which webhook targets are allowed, as settings: free of HTTP clients so the settings can
hold it."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from docjobs.net.addresses import HOST_NAME, network


class WebhookSettings(BaseModel):
    allow_private_targets: bool = False
    """Off. Allows loopback, private (RFC 1918, ULA), link-local (cloud metadata), CGNAT,
    multicast, reserved and unspecified addresses, and IPv4-mapped/6to4 forms of them, as
    webhook targets and as documents' ``source_url`` (plain http too). Only for
    single-tenant installs whose receivers and sources live on the internal network."""
    allowed_hosts: list[str] = []
    """Empty. Exceptions to the address rules: host names (ASCII, matched exactly, whatever
    they resolve to) or IP networks in CIDR form (``10.1.2.0/24``) a resolved address may
    fall in."""
    timeout_seconds: float = Field(default=10.0, gt=0)
    """Seconds; 10. Connect, read and write timeout of one try; a slow receiver must not hold
    a delivery thread."""
    max_attempts: int = Field(default=6, ge=1, le=20)
    """Tries in all, the first one included; 6 spans about half a minute of plain backoff."""
    initial_backoff_seconds: float = Field(default=1.0, ge=0)
    """Seconds; 1. Wait after the first failed try, doubled after each further one."""
    max_backoff_seconds: float = Field(default=300.0, ge=0)
    """Seconds; 5 min. Cap of the doubling backoff."""
    max_retry_after_seconds: float = Field(default=3600.0, ge=0)
    """Seconds; 1 h. Cap of a receiver's ``Retry-After``, so one receiver cannot park a
    delivery thread for days."""
    max_parallel_deliveries: int = Field(default=16, ge=1)
    """Deliveries; 16. Threads delivering webhooks in one process, so at most this many tries
    at once; other events wait in a queue, and a retry waits out its backoff without holding
    a thread (the embedded backend and the operator alike). A burst of finished jobs with
    slow receivers holds a bounded number of threads and connections."""

    @field_validator("allowed_hosts")
    @classmethod
    def _check_allowed_hosts(cls, value: list[str]) -> list[str]:
        entries = [entry.strip().lower().rstrip(".") for entry in value]
        for entry in entries:
            if network(entry) is None and not HOST_NAME.fullmatch(entry):
                raise ValueError(f"{entry!r} is neither a host name nor a CIDR network")
        return entries
