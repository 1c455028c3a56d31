"""``POST /api/v1/convert/{text,html,markdown,json}-to-pdf``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response

from docjobs.documents import DocumentError, inspect_for_conversion
from docjobs.domain.models import ConvertToPdf

from ..deps import AsyncFlag, BackendDep, PrincipalDep, SettingsDep
from ..ratelimit import rate_limited
from ..submit import document_error, submit
from ..uploads import save_upload

router = APIRouter(prefix="/api/v1/convert", tags=["convert"], dependencies=[Depends(rate_limited)])

_CONTENT_TYPES = {
    "text": "text/plain",
    "html": "text/html",
    "markdown": "text/markdown",
    "json": "application/json",
}
_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"application/pdf": {}}, "description": "The PDF."},
    202: {"description": "Queued as a job (async, large input, or past the sync wait)."},
}


async def _convert(
    source_format: Literal["text", "html", "markdown", "json"],
    request: Request,
    backend: BackendDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    file: UploadFile | None,
    content: str | None,
    run_async: bool,
) -> Response:
    limits = settings.limits
    upload = await save_upload(
        file,
        content,
        settings.data_dir / "tmp",
        limits.max_upload_bytes,
        f"document.{'md' if source_format == 'markdown' else source_format}",
    )
    try:
        try:
            await asyncio.to_thread(inspect_for_conversion, upload.path, source_format)
        except DocumentError as exc:
            raise document_error(exc) from None
        return await submit(
            request,
            backend,
            settings,
            principal,
            ConvertToPdf(source_format=source_format),
            upload,
            _CONTENT_TYPES[source_format],
            None,
            run_async or upload.size > limits.sync_convert_bytes,
        )
    finally:
        upload.discard()


def _route(source_format: Literal["text", "html", "markdown", "json"]) -> None:
    async def endpoint(
        request: Request,
        backend: BackendDep,
        settings: SettingsDep,
        principal: PrincipalDep,
        file: Annotated[UploadFile | None, File(description="The document.")] = None,
        content: Annotated[str | None, Form(description="The document, inline.")] = None,
        run_async: AsyncFlag = False,
    ) -> Response:
        return await _convert(
            source_format, request, backend, settings, principal, file, content, run_async
        )

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
