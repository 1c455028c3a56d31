"""``POST /api/v1/convert/{text,html,markdown,json}-to-pdf``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response

from docjobs.domain.models import ConvertToPdf, PdfVariant

from ..deps import AsyncFlag, PrincipalDep
from ..ratelimit import rate_limited
from ..schemas import PDF_CONTENT, processing_responses
from ..sources import SourceUrlField, UploadIdField
from ..submission import IdempotencyKey, SubmissionRequest, Submissions
from ..submit import answer
from ..uploads import Upload

router = APIRouter(prefix="/api/v1/convert", tags=["convert"], dependencies=[Depends(rate_limited)])

_RESPONSES = processing_responses({"description": "The PDF.", "content": PDF_CONTENT})

Variant = Annotated[
    PdfVariant | None,
    Form(
        description="A standard the PDF conforms to: 'pdf/a-2b' or 'pdf/a-3b' (archival: "
        "fonts embedded, sRGB output intent, XMP metadata; A-3 keeps embedded files), "
        "'pdf/ua-1' (accessible: tagged, titled, with a language). A plain PDF if absent."
    ),
]


def _route(source_format: Literal["text", "html", "markdown", "json"]) -> None:
    extension = "md" if source_format == "markdown" else source_format

    async def endpoint(
        request: Request,
        principal: PrincipalDep,
        submissions: Submissions,
        idempotency_key: IdempotencyKey = None,
        file: Annotated[UploadFile | None, File(description="The document.")] = None,
        content: Annotated[str | None, Form(description="The document, inline.")] = None,
        source_url: SourceUrlField = None,
        upload_id: UploadIdField = None,
        pdf_variant: Variant = None,
        run_async: AsyncFlag = False,
    ) -> Response:
        submission = SubmissionRequest(
            operation=ConvertToPdf(source_format=source_format, pdf_variant=pdf_variant),
            upload=Upload(file, content, f"document.{extension}", source_url, upload_id),
            tenant=principal.tenant,
            interactive=not run_async,
            idempotency_key=idempotency_key,
        )
        return await answer(request, submissions, submission)

    endpoint.__name__ = f"{source_format}_to_pdf"
    router.add_api_route(
        f"/{source_format}-to-pdf",
        endpoint,
        methods=["POST"],
        responses=_RESPONSES,
        summary=f"Convert {source_format} to PDF",
        response_class=Response,
    )


for _format in ("text", "html", "markdown", "json"):
    _route(_format)
