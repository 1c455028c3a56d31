"""``POST /api/v1/ocr/extract/{simple,advanced,vision}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import ValidationError

from docjobs.capabilities import TIER_NAMES, TierName
from docjobs.domain.models import OcrAdvanced, OcrOutput, OcrSimple, OcrVision

from ..deps import AsyncFlag, PrincipalDep
from ..ratelimit import rate_limited
from ..schemas import OCR_FORMAT_CONTENT, PDF_CONTENT, OcrResult, processing_responses
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
        "document as a PDF with an invisible text layer; 'hocr': hOCR 1.2 (XHTML); 'alto': "
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

    file: UploadFile
    idempotency_key: str | None
    output: str
    pages: str | None
    run_async: bool


async def ocr_form(
    file: Annotated[UploadFile, File(description="PDF, PNG, JPEG or TIFF.")],
    idempotency_key: IdempotencyKey = None,
    output: Output = "simple",
    pages: Pages = None,
    run_async: AsyncFlag = False,
) -> OcrForm:
    return OcrForm(file, idempotency_key, output, pages or None, run_async)


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


async def _answer(
    request: Request,
    tenant: str,
    submissions: Submissions,
    kind: type[OcrSimple | OcrAdvanced | OcrVision],
    form: OcrForm,
    language: str,
) -> Response:
    try:
        operation = kind.model_validate(
            {"output": form.output, "language": language, "pages": form.pages}
        )
    except ValidationError as exc:
        raise invalid_parameters(exc) from None
    submission = SubmissionRequest(
        operation=operation,
        upload=Upload(form.file),
        tenant=tenant,
        interactive=not form.run_async,
        idempotency_key=form.idempotency_key,
    )
    return await answer(request, submissions, submission)
