"""``POST /api/v1/ocr/extract/{simple,advanced,vision,auto}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import ValidationError

from docjobs.capabilities import TIER_NAMES, TierName
from docjobs.domain.models import OcrAdvanced, OcrAuto, OcrOutput, OcrSimple, OcrVision
from docjobs.office_files import ACCEPTED

from ..deps import AsyncFlag, PrincipalDep
from ..ratelimit import rate_limited
from ..schemas import OCR_FORMAT_CONTENT, PDF_CONTENT, OcrResult, processing_responses
from ..sources import SourceUrlField, UploadIdField
from ..submission import (
    IdempotencyKey,
    SubmissionRequest,
    Submissions,
    invalid_parameters,
    tesseract_language,
)
from ..submit import answer
from ..uploads import Upload
from .capabilities import tier_checked_route

_TIERS: dict[str, TierName] = {name: name for name in TIER_NAMES}


def _tier_of(path: str) -> TierName:
    return _TIERS[path.rsplit("/", 1)[-1]]


# A request for a tier this server cannot run is refused before its upload is read.
router = APIRouter(
    prefix="/api/v1/ocr/extract",
    tags=["ocr"],
    dependencies=[Depends(rate_limited)],
    route_class=tier_checked_route(_tier_of),
)

Output = Annotated[
    OcrOutput,
    Form(
        description="'simple': text and each page's confidence (0-100); 'detailed': also "
        "words with boxes and confidence per page, by block and line; 'searchable_pdf': the "
        "document as a PDF with an invisible text layer over each page that carries no text of "
        "its own; 'hocr': hOCR 1.2 (XHTML); 'alto': "
        "ALTO v4 XML; 'markdown': headings, paragraphs and lists in reading order."
    ),
]
Language = Annotated[
    str,
    Form(
        description="Language(s) of the text: an ISO 639 code, a BCP 47 tag or an English name "
        "('en', 'fr-FR', 'english'), or Tesseract's codes ('eng+deu'); '+' joins several."
    ),
]
Pages = Annotated[str | None, Form(description="1-based pages such as '1-3,5'; all if absent.")]


_RESPONSES = processing_responses(
    {
        "description": "The text (JSON), or with `output=searchable_pdf` the PDF, with "
        "`hocr`, `alto` or `markdown` the document in that format.",
        "model": OcrResult,
        "content": {**PDF_CONTENT, **OCR_FORMAT_CONTENT},
    }
)


@dataclass(frozen=True)
class OcrForm:
    """What every OCR tier's request carries besides the language."""

    file: UploadFile | None
    idempotency_key: str | None
    output: str
    pages: str | None
    run_async: bool
    source_url: str | None = None
    upload_id: str | None = None


async def ocr_form(
    file: Annotated[
        UploadFile | None,
        File(
            description=f"PDF, PNG, JPEG or TIFF, or an Office document ({ACCEPTED}), whose "
            "pages LibreOffice renders for the tier to read; an Office document counts as "
            "within the sync page limit up to DOCJOBS_LIMITS__SYNC_OFFICE_BYTES."
        ),
    ] = None,
    source_url: SourceUrlField = None,
    upload_id: UploadIdField = None,
    idempotency_key: IdempotencyKey = None,
    output: Output = "simple",
    pages: Pages = None,
    run_async: AsyncFlag = False,
) -> OcrForm:
    return OcrForm(file, idempotency_key, output, pages or None, run_async, source_url, upload_id)


Form_ = Annotated[OcrForm, Depends(ocr_form)]


@router.post("/simple", summary="OCR with Tesseract", response_class=Response, responses=_RESPONSES)
async def extract_simple(
    request: Request,
    principal: PrincipalDep,
    submissions: Submissions,
    form: Form_,
    language: Language = "eng",
) -> Response:
    codes = await tesseract_language(language)
    return await _answer(request, principal.tenant, submissions, OcrSimple, form, codes)


@router.post(
    "/advanced",
    summary="OCR with docTR (deep learning; the GPU pool in Kubernetes)",
    response_class=Response,
    responses=_RESPONSES,
)
async def extract_advanced(
    request: Request, principal: PrincipalDep, submissions: Submissions, form: Form_
) -> Response:
    # docTR's recognisers read Latin scripts whatever the language: it takes no language.
    return await _answer(request, principal.tenant, submissions, OcrAdvanced, form, "eng")


@router.post(
    "/vision",
    summary="OCR with a vision model (Claude)",
    response_class=Response,
    responses=_RESPONSES,
)
async def extract_vision(
    request: Request,
    principal: PrincipalDep,
    submissions: Submissions,
    form: Form_,
    language: Language = "eng",
) -> Response:
    codes = await tesseract_language(language)  # a hint in the prompt
    return await _answer(request, principal.tenant, submissions, OcrVision, form, codes)


@router.post(
    "/auto",
    summary="OCR with Tesseract, and stronger tiers for the pages it reads badly",
    description="Tesseract reads every page; a page it reads with a confidence under "
    "`confidence_threshold` (or where it finds no word) is read again by docTR where this "
    "server has it, then by Claude vision where a key is configured, and the most confident "
    "reading is kept (Claude gives no confidence: its reading counts as reaching the "
    "threshold, unless it found no text). Each page says which tier read it (`tier`) and why "
    "(`reason`), and the JSON result counts `pages_by_tier`. In Kubernetes mode the tier "
    "runs on the CPU pool, whose image has no docTR: weak pages go to Claude. Sync up to the "
    "Tesseract page limit.",
    response_class=Response,
    responses=_RESPONSES,
)
async def extract_auto(
    request: Request,
    principal: PrincipalDep,
    submissions: Submissions,
    form: Form_,
    language: Language = "eng",
    confidence_threshold: Annotated[
        float | None,
        Form(
            ge=0,
            le=100,
            description="0-100: pages Tesseract reads with less confidence are read again; "
            "0 keeps every page Tesseract's, 100 re-reads every page. The server's "
            "`DOCJOBS_OCR__AUTO_THRESHOLD` (75 by default) when absent.",
        ),
    ] = None,
) -> Response:
    codes = await tesseract_language(language)
    threshold = confidence_threshold
    if threshold is None:
        threshold = submissions.settings.ocr.auto_threshold
    extra: dict[str, object] = {"confidence_threshold": threshold}
    return await _answer(request, principal.tenant, submissions, OcrAuto, form, codes, extra)


async def _answer(
    request: Request,
    tenant: str,
    submissions: Submissions,
    kind: type[OcrSimple | OcrAdvanced | OcrVision | OcrAuto],
    form: OcrForm,
    language: str,
    extra: dict[str, object] | None = None,
) -> Response:
    try:
        operation = kind.model_validate(
            {"output": form.output, "language": language, "pages": form.pages, **(extra or {})}
        )
    except ValidationError as exc:
        raise invalid_parameters(exc) from None
    submission = SubmissionRequest(
        operation=operation,
        upload=Upload(form.file, source_url=form.source_url, upload_id=form.upload_id),
        tenant=tenant,
        interactive=not form.run_async,
        idempotency_key=form.idempotency_key,
    )
    return await answer(request, submissions, submission)
