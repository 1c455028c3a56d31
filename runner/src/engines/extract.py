"""The ``extract`` operation: fill a template's fields from a PDF or an image.

The result body is the shaped object itself (``{"invoice": {"number": ...}}``), what
the parse API shows as a completed job's ``result``; every template field is present, ``null``
when it was not found.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from docjobs.config import get_settings
from docjobs.domain.models import Extract
from docjobs.runner.engines import (
    EngineOutput,
    PermanentError,
    extract_llm,
    extract_rules,
    extract_text,
    ocr_output,
)
from docjobs.templates.schema import value_at


def extract(operation: Extract, source: Path, content_type: str, workdir: Path) -> EngineOutput:
    """``operation.template`` must be filled in: the runner reads it from the store first."""
    template = operation.template
    if template is None:
        raise PermanentError("TemplateNotFound", f"no template for {operation.template_id!r}")
    llm = operation.engine == "llm"
    document = extract_text.read(
        source,
        content_type,
        operation.language,
        keep_images=extract_llm.MAX_IMAGE_PAGES if llm else 0,
        ocr=operation.ocr,
    )
    if llm:
        result = extract_llm.extract_fields(template, document, get_settings().llm)
    else:
        result = extract_rules.extract_fields(template, document)
    target = workdir / "result.json"
    target.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    found = sum(value_at(result, field.name) is not None for field in template.fields)
    details: dict[str, Any] = {
        "fields_found": found,
        "fields_total": len(template.fields),
        "engine": operation.engine,
        "ocr": operation.ocr,
    }
    if operation.ocr == "auto":
        # Pages with a text layer are read by no tier; only scans count.
        tiers = [page.tier for page in document.pages if page.tier is not None]
        details["pages_by_tier"] = {tier: tiers.count(tier) for tier in ocr_output.TIERS}
    return EngineOutput(
        path=target,
        content_type="application/json",
        extension=".json",
        page_count=len(document.pages),
        details=details,
    )
