"""The ``extract`` operation: fill a template's fields from a PDF or an image.

The result body is the shaped object itself (``{"invoice": {"number": ...}}``), what
the parse API shows as a completed job's ``result``; every template field is present, ``null``
when it was not found.
"""

from __future__ import annotations

import json
from pathlib import Path

from docjobs.config import get_settings
from docjobs.domain.models import Extract
from docjobs.runner.engines import EngineOutput, extract_llm, extract_rules, extract_text
from docjobs.templates.schema import value_at


def extract(operation: Extract, source: Path, content_type: str) -> EngineOutput:
    llm = operation.engine == "llm"
    document = extract_text.read(
        source,
        content_type,
        operation.language,
        keep_images=extract_llm.MAX_IMAGE_PAGES if llm else 0,
        ocr=operation.ocr,
    )
    if llm:
        result = extract_llm.extract_fields(operation.template, document, get_settings().llm)
    else:
        result = extract_rules.extract_fields(operation.template, document)
    found = sum(value_at(result, field.name) is not None for field in operation.template.fields)
    return EngineOutput(
        data=json.dumps(result, ensure_ascii=False).encode("utf-8"),
        content_type="application/json",
        extension=".json",
        page_count=len(document.pages),
        details={
            "fields_found": found,
            "fields_total": len(operation.template.fields),
            "engine": operation.engine,
            "ocr": operation.ocr,
        },
    )
