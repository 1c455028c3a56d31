"""Render text, Markdown, JSON or HTML into a PDF with WeasyPrint.

The document is untrusted and WeasyPrint fetches whatever it references: stylesheets,
``@import``, ``@font-face``, images, ``<object>``/``<embed>``/``<iframe>`` and, for
``rel=attachment`` links, whole files it embeds in the PDF. A document naming
``http://169.254.169.254/`` or ``file:///etc/passwd`` must get neither, so every fetch
goes through :class:`_DataUrlsOnly`, and there is no base URL for relative references
to resolve against the filesystem.
"""

from __future__ import annotations

import html
import json
import logging
import re
from pathlib import Path
from typing import Any

import weasyprint
from markdown_it import MarkdownIt
from weasyprint.urls import URLFetcher, URLFetcherResponse

from docjobs.config import get_settings
from docjobs.documents import DocumentError, decode_text, parse_json
from docjobs.domain.models import ConvertToPdf
from docjobs.runner.engines import EngineOutput, PermanentError, render_ceilings
from docjobs.runner.engines.render_ceilings import RenderRefused, ResourceCeilings

_SCHEME = re.compile(r"^\s*([a-zA-Z][a-zA-Z0-9.+-]*):")
_TITLE_CHARS = 120
_ARCHIVAL = frozenset({"pdf/a-2b", "pdf/a-3b"})
# PDF/A forbids image interpolation, which WeasyPrint asks viewers for unless told otherwise.
_ARCHIVAL_CSS = "* { image-rendering: crisp-edges !important; }"

_PAGE_CSS = """
@page { size: A4; margin: 2cm; }
body { font-family: "DejaVu Sans", sans-serif; font-size: 11pt; line-height: 1.45; }
pre, code { font-family: "DejaVu Sans Mono", monospace; }
"""
_PRE_CSS = """
pre { margin: 0; font-size: 9.5pt; line-height: 1.35;
      white-space: pre-wrap; overflow-wrap: anywhere; }
"""
_MARKDOWN_CSS = """
h1, h2, h3, h4, h5, h6 { line-height: 1.2; margin: 1.2em 0 0.4em; }
h1 { font-size: 20pt; } h2 { font-size: 16pt; } h3 { font-size: 13pt; }
pre { background: #f5f5f5; padding: 0.6em; font-size: 9pt;
      white-space: pre-wrap; overflow-wrap: anywhere; }
code { font-size: 0.9em; background: #f5f5f5; padding: 0 0.15em; }
pre code { background: none; padding: 0; }
blockquote { margin: 0 0 0 0.8em; padding-left: 0.8em; border-left: 3px solid #ccc; color: #444; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #eee; }
img { max-width: 100%; }
"""


class RefusedFetch(ValueError):
    """A URL the conversion does not fetch: the service's policy at work, not a fault."""


class _QuietRefusals(logging.Filter):
    """WeasyPrint logs each resource the fetcher refuses at ERROR; a document full of
    remote images would fill the log with what is, here, the expected outcome."""

    def filter(self, record: logging.LogRecord) -> bool:
        # WeasyPrint wraps the fetcher's exception, keeping its class name in the message.
        return RefusedFetch.__name__ not in record.getMessage()


logging.getLogger("weasyprint").addFilter(_QuietRefusals())
# One line per rendering step of every conversion: nothing an operator acts on.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)


class _DataUrlsOnly(URLFetcher):  # type: ignore[misc]  # weasyprint ships no types
    """Serves ``data:`` URLs, which carry their content inline, and refuses all others.

    WeasyPrint logs a refused resource and renders without it. A served resource past a
    ceiling (an image's pixels, an SVG's elements) stops the conversion instead.
    """

    def __init__(self, ceilings: ResourceCeilings) -> None:
        super().__init__(allowed_protocols=("data",), allow_redirects=False, timeout=1)
        self.ceilings = ceilings

    def fetch(self, url: str, headers: dict[str, str] | None = None) -> Any:
        match = _SCHEME.match(url)
        if match is None or match[1].lower() != "data":
            raise RefusedFetch(f"refused to fetch {url[:100]!r}: only data: URLs are allowed")
        response = super().fetch(url, headers)
        body = response.read()  # a data: URL's content, already whole in the document
        self.ceilings.check(body, response.content_type)
        return URLFetcherResponse(response.url, body, response.headers, response.status)


def to_pdf(operation: ConvertToPdf, source: Path, workdir: Path) -> EngineOutput:
    text = decode_text(source.read_bytes())
    if not text.strip():
        raise PermanentError("EmptyDocument", "The document is empty.")
    page = _to_html(operation.source_format, text)
    target = workdir / "result.pdf"
    ceilings = ResourceCeilings(get_settings().ceilings)
    try:
        html = weasyprint.HTML(string=page, base_url=None, url_fetcher=_DataUrlsOnly(ceilings))
        for svg in render_ceilings.inline_svgs(html.etree_element):
            refusal = render_ceilings.svg_refusal(svg, ceilings.ceilings.max_svg_elements)
            if refusal is not None:
                raise refusal
        variant = operation.pdf_variant
        stylesheets = [weasyprint.CSS(string=_ARCHIVAL_CSS)] if variant in _ARCHIVAL else []
        document = html.render(pdf_variant=variant, stylesheets=stylesheets)
        if variant == "pdf/ua-1":
            _name_for_assistive_technology(document.metadata, html.etree_element.find("body"))
        if ceilings.refusal is None:
            document.write_pdf(target, pdf_variant=variant)
    except RenderRefused as refused:
        raise refused.error from None
    except RecursionError:
        # Thousands of nested elements; the same input would fail on every retry.
        raise PermanentError(
            "DocumentTooComplex", "The document nests elements too deeply to lay out."
        ) from None
    if ceilings.refusal is not None:  # refused inside an SVG, which WeasyPrint drew without
        raise ceilings.refusal
    page_count = len(document.pages)
    return EngineOutput(
        path=target,
        content_type="application/pdf",
        extension=".pdf",
        page_count=page_count,
        details={"page_count": page_count},
    )


def _name_for_assistive_technology(metadata: Any, page: Any) -> None:
    """Gives a PDF/UA document the title and language a screen reader announces where the
    document does not name them (``<title>``, ``<html lang>``; PDF/UA requires both): the
    first line of its text as the title, and English, as the request names no language."""
    if not metadata.title:
        text = "".join(page.itertext()) if page is not None else ""
        first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
        metadata.title = first_line[:_TITLE_CHARS] or "Document"
    if not metadata.lang:
        metadata.lang = "en"


def _to_html(source_format: str, text: str) -> str:
    if source_format == "html":
        return text
    if source_format == "markdown":
        # Raw HTML stays off: Markdown is for prose, and HTML in it would reach the
        # renderer unreviewed. markdown-it also drops javascript:, file: and similar links.
        renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
        return _page(renderer.render(text), _MARKDOWN_CSS)
    if source_format == "json":
        return _page(f"<pre>{html.escape(_pretty_json(text))}</pre>", _PRE_CSS)
    return _page(f"<pre>{html.escape(text)}</pre>", _PRE_CSS)


def _pretty_json(text: str) -> str:
    try:
        return json.dumps(parse_json(text), indent=2, ensure_ascii=False)
    except DocumentError as exc:
        raise PermanentError("InvalidJSON", exc.message) from None
    except RecursionError:
        raise PermanentError("InvalidJSON", "The JSON is nested too deeply to lay out.") from None


def _page(body: str, css: str) -> str:
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<style>{_PAGE_CSS}{css}</style></head><body>{body}</body></html>"
    )
