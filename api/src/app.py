"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from docjobs.auth.cache import VerifiedKeyCache
from docjobs.backends.base import Backend
from docjobs.backends.deliveries import DeliveryLog
from docjobs.bootstrap import create_backend
from docjobs.config import Settings
from docjobs.metrics import register_job_gauges
from docjobs.tracing import configure as configure_tracing

from . import errors
from .gate import ApiKeyGateMiddleware
from .metrics import RequestMetricsMiddleware
from .ratelimit import RateLimiter, RateLimitHeadersMiddleware
from .reference import ReferencePolicyMiddleware
from .routes import (
    batches,
    console,
    convert,
    events,
    health,
    jobs,
    ocr,
    office,
    parse,
    templates,
    uploads,
    webhooks,
)
from .routes.capabilities import capability_cache
from .routes.capabilities import router as capabilities_router
from .routes.events import OpenStreams
from .routes.usage import monthly_quotas
from .routes.usage import router as usage_router
from .tracing import TraceRequestsMiddleware
from .uploads import BodyLimitMiddleware
from .views import RenderedDetails


def create_app(settings: Settings, backend: Backend | None = None) -> FastAPI:
    configure_tracing(settings.tracing, "docjobs-api")
    backend = backend or create_backend(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await backend.start()
        register_job_gauges(backend.phase_counts)
        try:
            yield
        finally:
            app.state.delivery_log.close()
            await backend.stop()

    # /docs and /redoc with their scripts and styles served from the package, not a CDN: the
    # reference must render in clusters without internet access.
    app = FastAPIOffline(
        title="docjobs",
        summary="Asynchronous document processing: convert, OCR, extract.",
        version="0.1.0",
        lifespan=lifespan,
        # The badge would load an image from validator.swagger.io; nothing comes from
        # another host.
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.settings = settings
    app.state.backend = backend
    app.state.rate_limiter = RateLimiter(
        settings.rate_limits.plans,
        settings.rate_limits.storage_uri,
        settings.rate_limits.management,
    )
    app.state.verified_keys = VerifiedKeyCache(settings.key_cache_seconds)
    app.state.rendered_details = RenderedDetails()
    app.state.capabilities = capability_cache(settings)
    app.state.event_streams = OpenStreams(settings.server.max_event_streams_per_tenant)
    app.state.delivery_log = DeliveryLog(backend, settings.webhooks)
    app.state.usage_quotas = monthly_quotas(settings, backend)
    errors.install(app)
    app.add_middleware(
        BodyLimitMiddleware,
        upload_bytes=settings.limits.max_upload_bytes,
        json_bytes=settings.limits.max_json_bytes,
        batch_bytes=settings.limits.max_batch_bytes,
    )
    # Outside the body limit: an anonymous or rate-limited request is refused before any of
    # its body is read.
    app.add_middleware(
        ApiKeyGateMiddleware,
        backend=backend,
        verified=app.state.verified_keys,
        limiter=app.state.rate_limiter,
        rate_limits=settings.rate_limits,
    )
    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(RequestMetricsMiddleware)
    app.add_middleware(ReferencePolicyMiddleware)
    # Outermost: the request's span holds everything else, its upload included.
    app.add_middleware(TraceRequestsMiddleware)
    for module in (convert, office, ocr, batches, jobs, events, parse, templates, webhooks, health):
        app.include_router(module.router)
    app.include_router(capabilities_router)
    app.include_router(webhooks.job_router)
    app.include_router(usage_router)
    app.include_router(uploads.router)
    console.install(app)
    return app
