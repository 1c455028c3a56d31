"""Settings, grouped by concern, read from ``DOCJOBS_*`` environment variables.

Nested sections use ``__`` (``DOCJOBS_LIMITS__MAX_UPLOAD_BYTES=...``). Read them through
:func:`get_settings`, never at import time, so tests and commands can set the environment
first.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from docjobs.domain.models import RetryPolicy
from docjobs.webhooks.policy import WebhookSettings


class LimitSettings(BaseModel):
    max_upload_bytes: int = 50 * 1024 * 1024
    """Bytes; 50 MB. Larger uploads get 413 while they stream, before any work is queued."""
    sync_convert_bytes: int = 5 * 1024 * 1024
    """Bytes; 5 MB. X-to-PDF inputs above this run as async jobs (the jobs API's threshold)."""
    sync_tesseract_pages: int = 20
    """Pages; 20. Simple OCR above this runs as an async job."""
    sync_doctr_pages: int = 10
    """Pages; 10. Advanced OCR above this runs as an async job."""
    sync_vision_pages: int = 3
    """Pages; 3. Vision OCR above this runs as an async job."""
    sync_wait_seconds: float = 60.0
    """Seconds; 60. A sync request still running after this answers 202 and goes on as a job."""
    list_max: int = 100
    """Jobs; 100. Upper bound of ``limit`` when listing jobs."""


class JobSettings(BaseModel):
    retry: RetryPolicy = RetryPolicy()
    """3 attempts, 5 s then 25 s: the parse API's policy."""
    ttl_seconds: int = 24 * 3600
    """Seconds; 24 h. Finished jobs and their files are deleted this long after they end."""
    tombstone_seconds: int = 7 * 24 * 3600
    """Seconds; 7 days. An expired job answers 404 'expired' (not 'unknown') this long."""
    timeout_seconds: float = 600.0
    """Seconds; 10 min. Deadline of one attempt: a hung engine must not hold a worker forever."""


class RunnerSettings(BaseModel):
    concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1)
    """Workers; number of CPUs. Engines are CPU-bound, more workers only queue in the kernel."""
    memory_limit_mb: int = 4096
    """MiB; 4 GiB address space per worker, so a memory bomb kills a worker, not the host."""
    max_jobs_per_worker: int = 200
    """Jobs; 200. A warm worker is replaced after this many jobs, bounding leaks in engines."""
    poll_seconds: float = 0.5
    """Seconds; 0.5. How often the supervisor looks for due retries when nothing wakes it."""
    sweep_seconds: float = 30.0
    """Seconds; 30. How often finished jobs past their TTL are looked for and deleted."""


class RateLimitSettings(BaseModel):
    enabled: bool = True
    """Whether processing requests are rate limited per tenant."""
    plans: dict[str, str] = {
        "free": "10/minute",
        "starter": "30/minute",
        "pro": "60/minute",
        "business": "60/minute",
    }
    """Requests per window by plan, in the ``limits`` notation; the parse API's numbers."""


class S3Settings(BaseModel):
    endpoint: str = ""
    """host:port of the S3 API; empty selects the local directory store."""
    bucket: str = "docjobs"
    access_key: str = ""
    secret_key: str = ""
    secure: bool = True
    region: str | None = None


class KubernetesSettings(BaseModel):
    """The kubernetes backend: where its DocumentJobs, templates and key Secret live."""

    namespace: str = Field(default_factory=lambda: os.environ.get("POD_NAMESPACE") or "default")
    """The API's own namespace when it runs in a pod (``POD_NAMESPACE`` from the downward API),
    else ``default``."""
    watch_timeout_seconds: int = 300
    """Seconds; 5 min. The server ends each watch after this; the cache resumes from the last
    resourceVersion, so a silently dropped connection is noticed within this time."""
    request_timeout_seconds: float = 30.0
    """Seconds; 30. One API-server request other than a watch."""
    start_timeout_seconds: float = 30.0
    """Seconds; 30. The API refuses to start if its caches cannot list within this time."""
    keys_secret: str = "docjobs-api-keys"  # noqa: S105 - a name, not a secret
    """Secret holding the API keys' hashes, one data entry per key id."""


class LlmSettings(BaseModel):
    """Claude, for templates whose engine is ``llm``."""

    base_url: str | None = None
    """URL of the Anthropic Messages API; ``None``: the SDK's default (or ANTHROPIC_BASE_URL).
    Set it to reach Claude through a gateway or proxy."""
    api_key: str = ""
    """``DOCJOBS_LLM__API_KEY``; empty: llm extraction jobs fail with ``LlmNotConfigured``."""
    model: str = "claude-sonnet-5-5"
    """Model name; a current Sonnet reads invoices and forms well at a moderate price
    (claude-sonnet-4-5 reaches end of life on 2026-11-30)."""
    timeout_seconds: float = 60.0
    """Seconds; 60. One request; longer waits fail the attempt, which is retried."""
    max_tokens: int = 2048
    """Tokens; 2048. Cap on the answer: room for ~100 fields or a long table of line items."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DOCJOBS_", env_nested_delimiter="__", extra="ignore"
    )

    backend: Literal["embedded", "kubernetes"] = "embedded"
    data_dir: Path = Path("./data")
    """Embedded mode's job database, objects and keys live here."""
    limits: LimitSettings = LimitSettings()
    jobs: JobSettings = JobSettings()
    runner: RunnerSettings = RunnerSettings()
    rate_limits: RateLimitSettings = RateLimitSettings()
    s3: S3Settings = S3Settings()
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    llm: LlmSettings = LlmSettings()
    webhooks: WebhookSettings = WebhookSettings()
    extract_default_engine: Literal["rules", "llm"] = "rules"
    """Engine of templates that name none; ``rules`` needs no model and no network."""

    @model_validator(mode="before")
    @classmethod
    def _flat_s3_variables(cls, data: Any) -> Any:
        """Also read ``DOCJOBS_S3_ENDPOINT`` etc. (one underscore), the names
        ``.local-cluster/env`` exports; ``DOCJOBS_S3__ENDPOINT`` and arguments win over them."""
        flat = {
            name: os.environ[variable]
            for name in S3Settings.model_fields
            if (variable := f"DOCJOBS_S3_{name.upper()}") in os.environ
        }
        if not flat or not isinstance(data, dict):
            return data
        given = data.get("s3") or {}
        if isinstance(given, S3Settings):
            given = given.model_dump(exclude_unset=True)
        return {**data, "s3": {**flat, **given}}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
