"""``POST /api/v1/ocr/extract/{simple,advanced,vision}``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response

from docjobs.documents import DocumentError, check_language, inspect_for_ocr, validate_pages
from docjobs.domain.models import OcrSimple

from ..deps import AsyncFlag, BackendDep, PrincipalDep, SettingsDep
from ..errors import ApiError
from ..ratelimit import rate_limited
from ..submit import document_error, submit
from ..uploads import save_upload

router = APIRouter(prefix="/api/v1/ocr/extract", tags=["ocr"], dependencies=[Depends(rate_limited)])

Output = Annotated[
    Literal["simple", "detailed"],
    Form(description="'simple': text; 'detailed': words with boxes and confidence per page."),
]
Language = Annotated[str, Form(description="Tesseract language(s), e.g. 'eng' or 'eng+deu'.")]
Pages = Annotated[str | None, Form(description="1-based pages such as '1-3,5'; all if absent.")]


@router.post("/simple", summary="OCR with Tesseract", response_class=Response)
async def extract_simple(
    request: Request,
    backend: BackendDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    file: Annotated[UploadFile, File(description="PDF, PNG, JPEG or TIFF.")],
    output: Output = "simple",
    language: Language = "eng",
    pages: Pages = None,
    run_async: AsyncFlag = False,
) -> Response:
    try:
        operation = OcrSimple(output=output, language=language, pages=pages or None)
    except ValueError as exc:
        raise ApiError(422, "invalid_parameters", str(exc).splitlines()[-1].strip()) from None
    upload = await save_upload(
        file, None, settings.data_dir / "tmp", settings.limits.max_upload_bytes, "document"
    )
    try:
        try:
            check_language(language)
            found = await asyncio.to_thread(
                inspect_for_ocr, upload.path, upload.declared_type, upload.file_name
            )
            page_count = found.page_count or 0
            selected = validate_pages(pages, page_count)
        except DocumentError as exc:
            raise document_error(exc) from None
        large = len(selected) > settings.limits.sync_tesseract_pages
        return await submit(
            request,
            backend,
            settings,
            principal,
            operation,
            upload,
            found.content_type,
            found.page_count,
            run_async or large,
        )
    finally:
        upload.discard()


@router.post("/advanced", summary="OCR with docTR (not yet available)", status_code=501)
async def extract_advanced(principal: PrincipalDep) -> Response:
    raise ApiError(
        501,
        "not_implemented",
        "Advanced OCR (docTR) is not available in this release yet; "
        "use /api/v1/ocr/extract/simple.",
    )


@router.post("/vision", summary="OCR with a vision model (not yet available)", status_code=501)
async def extract_vision(principal: PrincipalDep) -> Response:
    raise ApiError(
        501,
        "not_implemented",
        "Vision OCR is not available in this release yet; use /api/v1/ocr/extract/simple.",
    )
