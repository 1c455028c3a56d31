"""``GET /api/v1/capabilities``: what this server can do for the caller, and the refusal of a
request for a tier it cannot run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, get_args

from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from docjobs.capabilities import Capabilities, CapabilityCache, TierName
from docjobs.config import Settings
from docjobs.domain.models import Extract, OcrParams

from ..deps import PrincipalDep, SettingsDep
from ..errors import ApiError
from ..schemas import error_responses

router = APIRouter(prefix="/api/v1", tags=["capabilities"], responses=error_responses(401))

TIER_UNAVAILABLE = "tier_unavailable"


class TierView(BaseModel):
    available: bool
    reason: str = Field(
        description="What runs the tier, or why it cannot run.",
        examples=["the doctr extra (python-doctr, torch) is not installed"],
    )
    fix: str | None = Field(
        description="How the operator enables it; null when available.",
        examples=["make setup EXTRAS=doctr, then docjobs models fetch"],
    )


class TiersView(BaseModel):
    simple: TierView = Field(description="OCR with Tesseract: `/api/v1/ocr/extract/simple`.")
    advanced: TierView = Field(description="OCR with docTR: `/api/v1/ocr/extract/advanced`.")
    vision: TierView = Field(description="OCR with Claude: `/api/v1/ocr/extract/vision`.")
    auto: TierView = Field(
        description="Tesseract, and docTR then Claude (where available) for the pages it "
        "reads badly: `/api/v1/ocr/extract/auto`; `reason` names the tiers it re-reads with."
    )
    llm: TierView = Field(description="Templates whose `engine` is `llm`.")


class SyncLimits(BaseModel):
    """Inputs up to these run synchronously; larger ones answer 202 with a job."""

    convert_bytes: int
    tesseract_pages: int
    doctr_pages: int
    vision_pages: int
    wait_seconds: float = Field(description="A sync request still running after this goes on.")


class PlanLimits(BaseModel):
    plan: str = Field(examples=["pro"])
    rate: str = Field(description="Processing requests per window.", examples=["60/minute"])
    max_upload_bytes: int
    max_pages: int = Field(description="Most pages of a document sent for OCR or parsing.")
    max_convert_pages: int = Field(description="Most pages a conversion to PDF may lay out.")
    sync: SyncLimits


class CapabilitiesView(BaseModel):
    tiers: TiersView
    outputs: list[str] = Field(
        description="The `output` values of the OCR routes.",
        examples=[["simple", "detailed", "searchable_pdf", "hocr", "alto", "markdown"]],
    )
    languages: list[str] = Field(
        description="Tesseract's installed languages, as its codes.", examples=[["deu", "eng"]]
    )
    limits: PlanLimits


def capability_cache(settings: Settings) -> CapabilityCache:
    """What ``create_app`` keeps in ``app.state.capabilities``."""
    return CapabilityCache(settings)


async def current_capabilities(request: Request) -> Capabilities:
    cache: CapabilityCache = request.app.state.capabilities
    found = cache.fresh()
    return found if found is not None else await asyncio.to_thread(cache.refresh)


async def require_tier(request: Request, name: TierName) -> None:
    """503 ``tier_unavailable`` naming the fix, when tier ``name`` cannot run here."""
    tier = (await current_capabilities(request)).tier(name)
    if not tier.available:
        # The body may still be on its way: close the connection rather than drain it.
        raise ApiError(503, TIER_UNAVAILABLE, tier.refusal(), headers={"Connection": "close"})


async def require_extract_tiers(request: Request, operation: Extract) -> None:
    """503 ``tier_unavailable`` when the extraction's engine, or the OCR tier it reads scanned
    pages with, cannot run here."""
    if operation.engine == "llm":
        await require_tier(request, "llm")
    if operation.ocr != "simple":  # Tesseract's absence shows in the language check
        await require_tier(request, operation.ocr)


def tier_checked_route(tier_of: Callable[[str], TierName]) -> type[APIRoute]:
    """A route class that refuses a request when the tier ``tier_of(route path)`` names is
    unavailable, before FastAPI reads the body (it parses a form, the whole upload, before
    any dependency runs)."""

    class TierCheckedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            tier = tier_of(self.path)

            async def checked(request: Request) -> Response:
                await require_tier(request, tier)
                return await handler(request)

            return checked

    return TierCheckedRoute


OCR_OUTPUTS = list(get_args(OcrParams.model_fields["output"].annotation))


@router.get("/capabilities", summary="What this server can do, and the caller's limits")
async def capabilities(
    request: Request, principal: PrincipalDep, settings: SettingsDep
) -> CapabilitiesView:
    found = await current_capabilities(request)
    tiers = {
        name: TierView(available=tier.available, reason=tier.reason, fix=tier.fix)
        for name, tier in found.tiers.items()
    }
    limits = settings.limits
    return CapabilitiesView(
        tiers=TiersView(**tiers),
        outputs=OCR_OUTPUTS,
        languages=list(found.languages),
        limits=PlanLimits(
            plan=principal.plan,
            rate=settings.rate_limits.plans.get(principal.plan, ""),
            max_upload_bytes=limits.max_upload_bytes,
            max_pages=settings.ceilings.max_pages,
            max_convert_pages=settings.ceilings.max_convert_pages,
            sync=SyncLimits(
                convert_bytes=limits.sync_convert_bytes,
                tesseract_pages=limits.sync_tesseract_pages,
                doctr_pages=limits.sync_doctr_pages,
                vision_pages=limits.sync_vision_pages,
                wait_seconds=limits.sync_wait_seconds,
            ),
        ),
    )
