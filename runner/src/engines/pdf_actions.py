"""What a searchable PDF leaves out of its input: everything that runs when it is opened.

A viewer runs the catalog's ``/OpenAction`` on opening, ``/AA`` (additional actions) on
events of the document, its pages and annotations, the ``/JavaScript`` name tree's scripts
on load, and an annotation's ``/A`` when clicked: JavaScript and ``/Launch`` (start a
program) are dropped, so a scan that came in with them goes out without. Links to pages and
URIs stay.
"""

from __future__ import annotations

from pypdf import PdfWriter
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject, PdfObject

_RUNNING = frozenset({"/JavaScript", "/Launch"})


def runs_code(action: PdfObject | None, depth: int = 0) -> bool:
    """Whether ``action`` (or an action it chains to with ``/Next``) is JavaScript or Launch."""
    resolved = action.get_object() if action is not None else None
    if depth > 32:
        return True  # a chain this long is not a link to follow
    if isinstance(resolved, ArrayObject):
        return any(runs_code(item, depth + 1) for item in resolved)
    if not isinstance(resolved, DictionaryObject):
        return False
    if resolved.get("/S") in _RUNNING:
        return True
    return runs_code(resolved.get("/Next"), depth + 1)


def clean_catalog(catalog: DictionaryObject) -> DictionaryObject | None:
    """A copy of the catalog without its opening action, its additional actions and its
    document scripts; ``None`` when it has none of them."""
    opening = catalog.get("/OpenAction")
    drop_opening = isinstance(opening.get_object() if opening else None, DictionaryObject)
    names = _resolved(catalog.get("/Names"))
    has_scripts = isinstance(names, DictionaryObject) and "/JavaScript" in names
    if not drop_opening and "/AA" not in catalog and not has_scripts:
        return None
    copy = DictionaryObject(dict.items(catalog))
    if drop_opening:
        del copy[NameObject("/OpenAction")]
    copy.pop(NameObject("/AA"), None)
    if has_scripts and isinstance(names, DictionaryObject):
        kept = DictionaryObject(dict.items(names))
        del kept[NameObject("/JavaScript")]
        copy[NameObject("/Names")] = kept
    return copy


def clean_annotation(annotation: DictionaryObject) -> DictionaryObject | None:
    """A copy of the annotation without actions that run code; ``None`` when it has none."""
    drop_action = runs_code(annotation.get("/A"))
    if not drop_action and "/AA" not in annotation:
        return None
    copy = DictionaryObject(dict.items(annotation))
    if drop_action:
        del copy[NameObject("/A")]
    copy.pop(NameObject("/AA"), None)
    return copy


def clean_page(page: DictionaryObject) -> DictionaryObject | None:
    """A copy of the page without its additional actions and with its direct (not
    referenced) annotations cleaned; ``None`` when neither needs it. Referenced
    annotations are objects of their own: see :func:`referenced_annotations`."""
    annotations = _resolved(page.get("/Annots"))
    cleaned: list[PdfObject] = []
    changed = False
    if isinstance(annotations, ArrayObject):
        for item in annotations:
            direct = item.get_object() if not isinstance(item, IndirectObject) else None
            clean = clean_annotation(direct) if isinstance(direct, DictionaryObject) else None
            changed = changed or clean is not None
            cleaned.append(clean if clean is not None else item)
    if not changed and "/AA" not in page:
        return None
    copy = DictionaryObject(dict.items(page))
    copy.pop(NameObject("/AA"), None)
    if changed:
        copy[NameObject("/Annots")] = ArrayObject(cleaned)
    return copy


def referenced_annotations(
    page: DictionaryObject,
) -> list[tuple[IndirectObject, DictionaryObject]]:
    """The page's annotations that are objects of their own, each with its cleaned copy,
    for those that run code."""
    annotations = _resolved(page.get("/Annots"))
    found: list[tuple[IndirectObject, DictionaryObject]] = []
    if isinstance(annotations, ArrayObject):
        for item in annotations:
            annotation = item.get_object() if isinstance(item, IndirectObject) else None
            if isinstance(item, IndirectObject) and isinstance(annotation, DictionaryObject):
                clean = clean_annotation(annotation)
                if clean is not None:
                    found.append((item, clean))
    return found


def clean_writer(writer: PdfWriter) -> None:
    """Drops what runs code from a whole document held by ``writer``, in place."""
    root = writer.root_object
    clean = clean_catalog(root)
    if clean is not None:
        for key in [key for key in root if key not in clean]:
            del root[key]
        root.update(clean)
    for page in writer.pages:
        annotations = _resolved(page.get("/Annots"))
        if isinstance(annotations, ArrayObject):
            for item in annotations:
                target = item.get_object()
                if isinstance(target, DictionaryObject):
                    if runs_code(target.get("/A")):
                        del target[NameObject("/A")]
                    target.pop(NameObject("/AA"), None)
        page.pop(NameObject("/AA"), None)


def _resolved(value: PdfObject | None) -> PdfObject | None:
    return value.get_object() if value is not None else None
