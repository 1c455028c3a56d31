"""The ``inputs`` section: documents by reference (a URL, an S3 object) and direct uploads."""

from __future__ import annotations

from pydantic import BaseModel, Field


class InputSettings(BaseModel):
    """Where documents may come from besides an upload through the API
    (``DOCJOBS_INPUTS__*``)."""

    max_source_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    """Bytes; 50 MB. A ``source_url`` or ``s3://`` document larger than this is refused with
    413 as soon as it passes it."""
    source_timeout_seconds: float = Field(default=60.0, gt=0)
    """Seconds; the whole fetch of a ``source_url``, redirects included. Fetches obey the
    webhooks' address rules (``DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS``, ``_ALLOWED_HOSTS``);
    plain http only where those allow the host."""
    tenant_buckets: dict[str, list[str]] = Field(default_factory=dict)
    """Buckets each tenant may name in ``s3://bucket/key`` (read with the installation's S3
    credentials), e.g. ``{"acme": ["acme-inbox"]}``. Empty: no ``s3://`` sources."""
    plan_buckets: dict[str, list[str]] = Field(default_factory=dict)
    """The same per plan: every tenant of the plan may read these buckets."""
    max_direct_upload_bytes: int = Field(default=2 * 1024 * 1024 * 1024, ge=1)
    """Bytes; 2 GiB. The largest direct upload (``POST /api/v1/uploads``), checked when it
    is announced, while an embedded upload streams, and when a job is submitted on it."""
    upload_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    """Seconds; a day. An upload not submitted by then is refused and deleted."""
    upload_signing_key: str = ""
    """Key of the signed local upload URLs of embedded mode; empty: a key kept in the data
    directory."""
