"""``POST /api/v1/convert/office-to-pdf``: Word, Excel, PowerPoint, OpenDocument and RTF
documents to PDF through LibreOffice."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.responses import Response

from docjobs.domain.models import ConvertToPdf
from docjobs.office_files import ACCEPTED

from ..deps import AsyncFlag, PrincipalDep
from ..ratelimit import rate_limited
from ..schemas import PDF_CONTENT, processing_responses
from ..sources import SourceUrlField, UploadIdField
from ..submission import IdempotencyKey, SubmissionRequest, Submissions
from ..submit import answer
from ..uploads import Upload
from .convert import Variant

router = APIRouter(prefix="/api/v1/convert", tags=["convert"], dependencies=[Depends(rate_limited)])


@router.post(
    "/office-to-pdf",
    responses=processing_responses({"description": "The PDF.", "content": PDF_CONTENT}),
    summary="Convert an Office document to PDF",
    response_class=Response,
)
async def office_to_pdf(
    request: Request,
    principal: PrincipalDep,
    submissions: Submissions,
    file: Annotated[UploadFile | None, File(description=f"The document: {ACCEPTED}.")] = None,
    source_url: SourceUrlField = None,
    upload_id: UploadIdField = None,
    idempotency_key: IdempotencyKey = None,
    pdf_variant: Variant = None,
    run_async: AsyncFlag = False,
) -> Response:
    """The document's type is read from its content (an OLE2, zip or RTF header and the
    main part it names), never from its name alone; macros never run and nothing it links
    to is fetched. ``pdf_variant`` ``pdf/ua-1`` is for text documents only (doc, docx, odt,
    rtf): LibreOffice leaves a spreadsheet's or a presentation's content untagged."""
    submission = SubmissionRequest(
        operation=ConvertToPdf(source_format="office", pdf_variant=pdf_variant),
        upload=Upload(file, None, "document", source_url, upload_id),
        tenant=principal.tenant,
        interactive=not run_async,
        idempotency_key=idempotency_key,
    )
    return await answer(request, submissions, submission)
