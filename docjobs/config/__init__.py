"""Settings, grouped by concern, read from ``DOCJOBS_*`` environment variables.

Nested sections use ``__`` (``DOCJOBS_LIMITS__MAX_UPLOAD_BYTES=...``). Read them through
:func:`get_settings`, never at import time, so tests and commands can set the environment
first. This is the one settings root: the API, the CLI, the runner and the operator all read
it (the operator its ``operator`` section, defined in :mod:`docjobs.config.operator`).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from docjobs.config.inputs import InputSettings as InputSettings
from docjobs.config.ocr import OcrSettings as OcrSettings
from docjobs.config.office import OfficeSettings as OfficeSettings
from docjobs.config.operator import OperatorSettings as OperatorSettings
from docjobs.config.usage import UsageSettings as UsageSettings
from docjobs.domain.engines import CPU_ENGINES
from docjobs.domain.models import Engine, RetryPolicy
from docjobs.templates.store import TemplateBounds
from docjobs.tracing import TracingSettings as TracingSettings
from docjobs.webhooks.policy import WebhookSettings


class LimitSettings(BaseModel):
    max_upload_bytes: int = 50 * 1024 * 1024
    """Bytes; 50 MB. Larger uploads get 413 while they stream, before any work is queued."""
    max_json_bytes: int = 256 * 1024
    """Bytes; 256 KB. Body limit of every route that takes JSON rather than a document
    (templates, webhooks); larger bodies get 413 while they stream."""
    sync_convert_bytes: int = 5 * 1024 * 1024
    """Bytes; 5 MB. X-to-PDF inputs above this run as async jobs (the jobs API's threshold)."""
    sync_tesseract_pages: int = 20
    """Pages; 20. Simple OCR above this runs as an async job."""
    sync_doctr_pages: int = 10
    """Pages; 10. Advanced OCR above this runs as an async job."""
    sync_vision_pages: int = 3
    """Pages; 3. Vision OCR above this runs as an async job."""
    sync_office_bytes: int = 256 * 1024
    """Bytes; 256 KB. An Office document sent for OCR counts as within its tier's sync page
    limit up to this size: its pages are known only once the runner has laid it out."""
    sync_wait_seconds: float = 60.0
    """Seconds; 60. A sync request still running after this answers 202 and goes on as a job."""
    list_max: int = 100
    """Jobs; 100. Upper bound of ``limit`` when listing jobs."""
    max_batch_files: int = 100
    """Documents; 100. Most files one batch may carry (400 ``too_many_files`` past it)."""
    max_batch_bytes: int = 200 * 1024 * 1024
    """Bytes; 200 MB. Body limit of a batch, all its files together (413 while it streams);
    each file is also held to ``max_upload_bytes``."""
    max_template_bytes: int = 64 * 1024
    """Bytes; 64 KB. Largest template, serialized as JSON (413 above it): every version a job
    ran with is kept in the object store, and runners read it whole."""
    max_templates_per_tenant: int = 100
    """Templates; 100. A tenant's further creates get 429 until it deletes one."""

    def template_bounds(self) -> TemplateBounds:
        return TemplateBounds(self.max_template_bytes, self.max_templates_per_tenant)


class JobSettings(BaseModel):
    retry: RetryPolicy = RetryPolicy()
    """3 attempts, 5 s then 25 s: the parse API's policy."""
    ttl_seconds: int = 24 * 3600
    """Seconds; 24 h. Finished jobs and their files are deleted this long after they end."""
    tombstone_seconds: int = 7 * 24 * 3600
    """Seconds; 7 days. An expired job answers 404 'expired' (not 'unknown') this long."""
    timeout_seconds: float = 600.0
    """Seconds; 10 min. Deadline of one attempt: a hung engine must not hold a worker forever."""
    max_running_per_tenant: int = Field(default=0, ge=0)
    """Jobs; 0 (no cap). Most jobs of one tenant processed at once; its further jobs wait
    as pending, so one tenant's burst cannot take every worker (or the whole cluster)."""


class RunnerSettings(BaseModel):
    concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1)
    """Workers; number of CPUs. Engines are CPU-bound, more workers only queue in the kernel."""
    memory_limit_mb: int = 4096
    """MiB; 4 GiB of data (heap and anonymous memory) per worker, so a memory bomb kills a
    worker, not the host."""
    max_jobs_per_worker: int = 200
    """Jobs; 200. A warm worker is replaced after this many jobs, bounding leaks in engines."""
    torch_idle_seconds: float = Field(default=30.0, gt=0)
    """Seconds; 30. A warm worker that ran docTR holds PyTorch and its models (~1 GB); it is
    retired once idle this long, so the memory goes back when the docTR work is done."""
    poll_seconds: float = 0.5
    """Seconds; 0.5. How often the supervisor looks for due retries when nothing wakes it."""
    sweep_seconds: float = 30.0
    """Seconds; 30. How often finished jobs past their TTL are looked for and deleted."""
    part_pages: int = Field(default=4, ge=0)
    """Pages; 4. A long OCR document is read in parts of this many pages, then merged:
    embedded, by every warm worker no waiting job needs (a longer document is split); on
    Kubernetes, one part per pod of an Indexed Job, for documents above the operator's
    ``shard_threshold_pages`` (the Helm chart sets 25: a pod costs seconds to start, a warm
    worker nothing). 0 reads every document in one worker or pod."""
    manifest_file: Path | None = None
    """Set by the operator on Kubernetes runner pods: the file (from the runner Job's own
    Secret) holding a presigned GET URL of the attempt's manifest (its job spec and the
    presigned URLs of the objects it may use), which is then the runner's whole object store.
    Unset: the store the S3 or data-directory settings name."""


class CeilingSettings(BaseModel):
    """What one request or one attempt may cost at most. A job that reaches a ceiling fails
    permanently with a code naming it (never retried); a request that would, gets a 4xx."""

    max_pages: int = Field(default=2000, ge=1)
    """Pages; 2,000. Most pages of a document sent for OCR or parsing (``too_many_pages``)."""
    max_convert_pages: int = Field(default=1000, ge=1)
    """Pages; 1,000. Most pages a conversion to PDF may lay out."""
    max_image_pixels: int = Field(default=100_000_000, ge=1)
    """Pixels; 100 million. Largest image, TIFF frame or rendered page (RGB: ~300 MB)."""
    max_stream_bytes: int = Field(default=256 * 1024 * 1024, ge=1)
    """Bytes; 256 MiB. Most bytes one PDF stream may decompress to."""
    max_svg_elements: int = Field(default=200_000, ge=1)
    """Elements; 200,000. Most elements an SVG of a conversion may draw, counting each
    ``<use>`` as the copy it makes (nested uses multiply)."""
    attempt_cpu_seconds: int = Field(default=900, ge=1)
    """CPU seconds; 15 min. Most CPU time one attempt may use in its runner process."""
    inspect_seconds: float = Field(default=10.0, gt=0)
    """Seconds; 10. Longest the API spends counting an upload's pages (in a child process)."""
    inspect_memory_mb: int = Field(default=512, ge=64)
    """MiB; 512. Most memory the child that counts an upload's pages may take."""
    pattern_seconds: float = Field(default=2.0, gt=0)
    """Seconds; 2. Longest a template pattern may take to compile when it is checked."""
    pattern_memory_mb: int = Field(default=256, ge=32)
    """MiB; 256. Most memory the child that checks a template pattern may take."""


class ServerSettings(BaseModel):
    """Connections the HTTP server accepts, so that idle or slow clients cannot take its file
    descriptors or its loop."""

    header_timeout_seconds: float = Field(default=10.0, gt=0)
    """Seconds; 10. A client must send a request's whole head within this time."""
    body_timeout_seconds: float = Field(default=60.0, gt=0)
    """Seconds; 60. Longest wait for the next piece of a request body."""
    max_connections: int = Field(default=2048, ge=1)
    """Connections; 2,048. Open connections at once; past it, the one waiting longest for a
    request head is closed to make room (the new one when none waits). Lowered to what the
    open file limit allows."""
    max_connections_per_client: int = Field(default=256, ge=1)
    """Connections; 256. Open connections at once from one client address (behind a proxy,
    the proxy's: at least its pool of upstream connections)."""
    max_event_streams_per_tenant: int = Field(default=32, ge=1)
    """Streams; 32. Open ``/events`` streams at once per tenant (429 above it)."""
    dependency_threads: int = Field(default=40, ge=1)
    """Threads; 40. Blocking calls to one dependency (the database, the object store, the
    Kubernetes API server) at once; each has threads of its own, so one that hangs never
    holds up calls to another."""
    stall_seconds: float = Field(default=120.0, gt=0)
    """Seconds; 120. ``/healthz`` answers 503 (``process_stalled``) once a dependency's
    threads have all been busy without one call finishing for this long, or the event loop
    has lagged this long: the process can no longer serve, and a liveness probe restarts
    it. Longer than the S3 and Kubernetes timeouts let one call hold a thread, so a
    dependency that hangs makes the API refuse what needs it, never restart."""


class RateLimitSettings(BaseModel):
    enabled: bool = True
    """Whether processing, template and webhook-endpoint requests are rate limited per
    tenant."""
    plans: dict[str, str] = {
        "free": "10/minute",
        "starter": "30/minute",
        "pro": "60/minute",
        "business": "60/minute",
    }
    """Requests per window by plan, in the ``limits`` notation; the parse API's numbers.
    Every API key has one of these plans."""
    management: str = "120/minute"
    """Requests per window to the template and webhook-endpoint routes (create, list, read,
    change, delete), per tenant whatever its plan, in the ``limits`` notation; counted apart
    from processing requests, so configuring never uses up the plan."""
    storage_uri: str = "memory://"
    """Where the counts live, as a ``limits`` storage URI. ``memory://`` keeps them in the
    API process (every replica then allows a plan's rate on its own); ``redis://host:6379``
    shares them between replicas."""

    @field_validator("plans")
    @classmethod
    def _some_plan(cls, plans: dict[str, str]) -> dict[str, str]:
        if not plans:
            raise ValueError("at least one plan is needed: every API key has one")
        return plans


class S3Settings(BaseModel):
    endpoint: str = ""
    """host:port of the S3 API; empty selects the local directory store."""
    bucket: str = "docjobs"
    access_key: str = ""
    secret_key: str = ""
    secure: bool = True
    region: str | None = None
    connect_timeout_seconds: float = Field(default=3.0, gt=0)
    """Seconds; 3. Opening a connection to the object store; a reachable one accepts in
    milliseconds."""
    read_timeout_seconds: float = Field(default=30.0, gt=0)
    """Seconds; 30. Longest wait for the next bytes of an answer (not for a whole transfer):
    a hung object store holds a request's thread this long at most."""
    key_prefix: str = ""
    """Put before every object key in the bucket (``acme-prod/``, say), so that installations
    sharing a bucket never share keys; empty keeps the keys as they are."""


class KubernetesSettings(BaseModel):
    """The kubernetes backend: where its DocumentJobs, templates and key Secret live."""

    namespace: str = Field(default_factory=lambda: os.environ.get("POD_NAMESPACE") or "default")
    """The API's own namespace when it runs in a pod (``POD_NAMESPACE`` from the downward API),
    else ``default``."""
    watch_timeout_seconds: int = 300
    """Seconds; 5 min. The server ends each watch after this; the cache resumes from the last
    resourceVersion, so a silently dropped connection is noticed within this time."""
    request_timeout_seconds: float = 30.0
    """Seconds; 30. Longest wait for the next bytes of an API-server answer, watches excepted
    (they wait their own timeout plus a grace)."""
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    """Seconds; 5. Opening a connection to the API server, watches included."""
    start_timeout_seconds: float = 30.0
    """Seconds; 30. The API refuses to start if its caches cannot list within this time."""
    keys_secret: str = "docjobs-api-keys"  # noqa: S105 - a name, not a secret
    """Secret holding the API keys' hashes, one data entry per key id."""
    webhooks_secret: str = "docjobs-webhooks"  # noqa: S105 - a name, not a secret
    """Secret holding webhook endpoints and their signing secrets; the operator reads the one
    of each job's namespace."""
    sync_workers: int = Field(default=2, ge=0)
    """Workers; 2. Warm runner processes in the API process for sync requests, as embedded
    mode has: a sync request under the sync limits runs on one (its DocumentJob claimed by
    this process) instead of waiting for a runner pod. 0: every job is a runner Job. A request
    that finds them all busy becomes a runner Job."""
    claim_seconds: float = Field(default=30.0, gt=0)
    """Seconds; 30. How long a claim on a DocumentJob holds without renewal (it is renewed
    every third of this while the work runs): the operator takes over the job of an API
    process that died this long after its last renewal."""


class WorkerPodSettings(BaseModel):
    """``docjobs workers``: pods of warm runner processes that claim small DocumentJobs on
    Kubernetes, so a one-page document costs no pod start and no engine import."""

    concurrency: int = Field(default=2, ge=1)
    """Workers; 2. Warm runner processes per pod, each running one claimed job at a time."""
    engines: list[Engine] = Field(default_factory=lambda: list(CPU_ENGINES), min_length=1)
    """Engines; ``["convert","tesseract","vision","extract"]``. The engines whose jobs this
    pod claims (JSON list): the shared image's by default; ``["doctr"]`` for pods of the GPU
    image. The operator's ``claimed_engines`` must include them."""
    port: int = Field(default=8080, ge=0)
    """Port; 8080. ``/healthz``, ``/readyz`` and ``/metrics`` over plain HTTP; 0: none."""
    drain_seconds: float = Field(default=20.0, ge=0)
    """Seconds; 20. On SIGTERM a pod claims nothing more and lets its running jobs finish
    this long; the claims of those still running are then released to the operator, which
    runs their attempts as runner Jobs."""


class LlmSettings(BaseModel):
    """Claude, for templates whose engine is ``llm`` and for vision OCR."""

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
    vision_max_tokens: int = 8192
    """Tokens; 8192. Cap on a vision OCR answer: the transcript of ``vision_pages_per_request``
    dense pages (~1,500 tokens each) with room to spare."""
    vision_pages_per_request: int = 4
    """Pages; 4. Pages one vision OCR request carries: fewer requests, while every page's
    transcript still fits in ``vision_max_tokens``."""
    vision_concurrency: int = Field(default=4, ge=1)
    """Requests; 4. Vision OCR requests of one document in flight at once: a request takes
    seconds to tens of seconds, nearly all of it waiting on Claude, so a long document is
    read that many times faster; kept moderate so one document does not use up the
    account's rate limit (a 429 is retried by the SDK, then by the job)."""
    vision_page_format: Literal["pdf", "image"] = "pdf"
    """``pdf``: PDF inputs go as document blocks (Claude sees both the page image and any
    text layer); ``image``: every page is rendered to a PNG first (for gateways or models
    without PDF support). Image inputs always go as images."""
    vision_max_retries: int = 2
    """Retries; 2. The SDK retries 408/409/429/5xx/overloaded answers and dropped connections
    this often, with its own backoff, before the attempt fails as transient and the job's
    retry policy takes over."""


class DoctrSettings(BaseModel):
    """docTR, the advanced OCR engine. Weights never come from a hub at run time: fill
    ``weights_dir`` (or ``weights_prefix``) with ``docjobs models fetch``."""

    detection_arch: str = "db_resnet50"
    """docTR text detection architecture; ``db_resnet50``: docTR's most accurate on straight
    document pages. ``db_mobilenet_v3_large`` is ~4x cheaper on CPU."""
    recognition_arch: str = "crnn_vgg16_bn"
    """docTR text recognition architecture; ``crnn_vgg16_bn``: docTR's default, a good
    accuracy/speed balance. ``crnn_mobilenet_v3_small`` is ~5x cheaper on CPU."""
    weights_dir: Path | None = None
    """Directory with one PyTorch state dict per architecture, ``<arch>.pt`` (or docTR's
    release names, ``<arch>-<hash>.pt``); ``None``: ``<data_dir>/models``."""
    weights_prefix: str = ""
    """Object-store key prefix holding the same files; when set, the files are downloaded
    into ``weights_dir`` once per runner process. Empty: only ``weights_dir`` is read."""
    device: Literal["auto", "cuda", "cpu"] = "auto"
    """``auto``: CUDA when ``torch.cuda.is_available()``, else CPU."""
    page_batch_size: int = Field(default=4, ge=1)
    """Pages; 4. Pages the detection model sees at once: larger batches use the GPU better
    and need ~150 MB of device memory per page at docTR's 1024 px input."""
    word_batch_size: int = Field(default=128, ge=1)
    """Word crops; 128 (docTR's default). Crops the recognition model reads at once."""
    cpu_threads: int = Field(default=1, ge=0)
    """Threads; 1. PyTorch's CPU threads per runner process: embedded mode already runs one
    worker per CPU, more threads only contend. 0: PyTorch's default (all CPUs)."""
    batch_documents: int = Field(default=8, ge=1)
    """Documents; 8. At most this many docTR documents go to one warm worker together, their
    pages read in shared batches of ``page_batch_size``; 1: each document alone."""
    batch_linger_ms: float = Field(default=20.0, ge=0)
    """Milliseconds; 20. How long a docTR document waits for others to share its batch; a
    lone document starts after this at most (once a worker is free)."""

    def weights_directory(self, data_dir: Path) -> Path:
        return self.weights_dir if self.weights_dir is not None else data_dir / "models"


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
    ceilings: CeilingSettings = CeilingSettings()
    server: ServerSettings = ServerSettings()
    rate_limits: RateLimitSettings = RateLimitSettings()
    s3: S3Settings = S3Settings()
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    llm: LlmSettings = LlmSettings()
    doctr: DoctrSettings = DoctrSettings()
    office: OfficeSettings = OfficeSettings()
    ocr: OcrSettings = OcrSettings()
    webhooks: WebhookSettings = WebhookSettings()
    operator: OperatorSettings = Field(default_factory=OperatorSettings)
    workers: WorkerPodSettings = WorkerPodSettings()
    usage: UsageSettings = UsageSettings()
    inputs: InputSettings = InputSettings()
    tracing: TracingSettings = TracingSettings()
    """Where spans go (OTLP), if anywhere: see :mod:`docjobs.tracing`."""
    extract_default_engine: Literal["rules", "llm"] = "rules"
    """Engine of templates that name none; ``rules`` needs no model and no network."""
    key_cache_seconds: float = Field(default=5.0, ge=0)
    """Seconds; how long the API trusts a key it verified without asking the key store again,
    so a revoked key stops working within this time. 0 checks the store on every request."""

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
