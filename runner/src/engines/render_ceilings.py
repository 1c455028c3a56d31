"""What one conversion may make WeasyPrint do: pages laid out, pixels decoded, SVG drawn.

WeasyPrint logs a resource it cannot load and renders without it, so a refusal raised where
it fetches must be fatal to be seen (:class:`RenderRefused`, a ``FatalURLFetchingError``);
an image inside an SVG is drawn where every exception is swallowed, so the refusal is also
kept (:class:`ResourceCeilings` ``.refusal``) and raised once rendering returns.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree

import weasyprint.layout
from PIL import Image
from weasyprint.urls import FatalURLFetchingError

from docjobs.config import CeilingSettings, get_settings
from docjobs.runner.engines import PermanentError

SVG = "{http://www.w3.org/2000/svg}"
_HREFS = ("{http://www.w3.org/1999/xlink}href", "href")


class RenderRefused(FatalURLFetchingError):  # type: ignore[misc]  # weasyprint ships no types
    def __init__(self, error: PermanentError) -> None:
        super().__init__(error.message)
        self.error = error


class ResourceCeilings:
    """Checks each resource a conversion fetches against the ceilings, before WeasyPrint
    decodes it; the first refusal stays in ``refusal``."""

    def __init__(self, ceilings: CeilingSettings) -> None:
        self.ceilings = ceilings
        self.refusal: PermanentError | None = None

    def check(self, body: bytes, content_type: str) -> None:
        error = (
            svg_refusal(_parsed(body), self.ceilings.max_svg_elements)
            if content_type == "image/svg+xml" or body.lstrip()[:1] == b"<"
            else _image_refusal(body, self.ceilings.max_image_pixels)
        )
        if error is not None:
            self.refusal = self.refusal or error
            raise RenderRefused(error)


def _parsed(body: bytes) -> ElementTree.Element | None:
    try:
        return ElementTree.fromstring(body)  # noqa: S314 - expat refuses entity expansion bombs
    except (ElementTree.ParseError, ValueError):
        return None  # WeasyPrint cannot draw it either


def _image_refusal(body: bytes, max_pixels: int) -> PermanentError | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(body)) as image:  # reads the header only
                width, height = image.size
        except Image.DecompressionBombError:
            width, height = max_pixels + 1, 1
        except Exception:  # not an image Pillow reads: WeasyPrint skips it too
            return None
    if width * height <= max_pixels:
        return None
    return PermanentError(
        "ImageTooLarge",
        f"An image of {width}x{height} pixels exceeds the ceiling of {max_pixels} pixels"
        " (DOCJOBS_CEILINGS__MAX_IMAGE_PIXELS).",
    )


def svg_refusal(root: ElementTree.Element | None, max_elements: int) -> PermanentError | None:
    """Refuses an SVG tree that draws more than ``max_elements`` elements, each ``<use>``
    counted as the copy of its target it draws (a reference cycle draws without end)."""
    if root is None or drawn_elements(root, max_elements) <= max_elements:
        return None
    return PermanentError(
        "TooManySvgElements",
        f"An SVG draws more than the ceiling of {max_elements} elements through nested"
        " <use> references (DOCJOBS_CEILINGS__MAX_SVG_ELEMENTS).",
    )


def drawn_elements(root: ElementTree.Element, ceiling: int) -> float:
    """How many elements drawing ``root`` makes, counting stops a little past ``ceiling``."""
    by_id = {element.get("id"): element for element in root.iter() if element.get("id")}
    counted: dict[int, float] = {}
    open_: set[int] = set()

    def count(element: ElementTree.Element) -> float:
        key = id(element)
        if key in counted:
            return counted[key]
        if key in open_:
            return math.inf  # a <use> of its own ancestor
        open_.add(key)
        total: float = 1
        if element.tag == f"{SVG}use":
            target = by_id.get(_fragment(element))
            if target is not None:
                total += count(target)
        for child in element:
            if total > ceiling:
                break
            total += count(child)
        open_.discard(key)
        counted[key] = total
        return total

    return count(root)


def _fragment(element: ElementTree.Element) -> str | None:
    for name in _HREFS:
        href = element.get(name)
        if href and href.startswith("#"):
            return href[1:]
    return None


def inline_svgs(root: Any) -> Iterator[ElementTree.Element]:
    """The ``<svg>`` elements of a parsed HTML document (WeasyPrint draws each one)."""
    yield from root.iter(f"{SVG}svg")


def _bounded_pages(*args: Any, **kwargs: Any) -> Iterator[Any]:
    """WeasyPrint's page maker, stopped once the layout passes the page ceiling: a short
    document can lay out tens of thousands of pages, each costing time and memory."""
    ceiling = get_settings().ceilings.max_convert_pages
    for number, page in enumerate(_make_all_pages(*args, **kwargs), start=1):
        if number > ceiling:
            raise PermanentError(
                "TooManyPages",
                f"The document lays out more than the ceiling of {ceiling} pages"
                " (DOCJOBS_CEILINGS__MAX_CONVERT_PAGES).",
            )
        yield page


# layout_document() calls make_all_pages by its name in weasyprint.layout, once per
# pagination pass: the bound applies to every pass.
_make_all_pages = weasyprint.layout.make_all_pages
weasyprint.layout.make_all_pages = _bounded_pages
