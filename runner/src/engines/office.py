"""Convert Office documents to PDF with LibreOffice, headless, one ``soffice`` per document.

The document is untrusted, and LibreOffice can run its macros and fetch what it links to
(images, OLE links, external data). Each worker process keeps one LibreOffice profile of its
own, made before its first conversion with macros off (``DisableMacrosExecution``, security
level 3: only signed macros from trusted sources, and there are none) and linked content
blocked (``BlockUntrustedRefererLinks``, link updates never); the first start initialises it
(a few seconds), later starts reuse it. Where the kernel allows, ``soffice`` also runs in a
network namespace of its own, so nothing outside reaches it whatever a document asks.

``soffice`` runs under a wall-clock limit; past it, it is killed with every process under it
(``OfficeTimeout``), the profile is made again, and the worker goes on. It stays in the
worker's process group, so that the pool's kill of a worker (a cancel, a deadline) takes it
along; a CPU-time limit bounds a spinning LibreOffice whatever happens to its worker, and a
file-size limit the PDF it writes.

A ``pdf_variant`` is LibreOffice's own PDF/A or PDF/UA export (the PDF export filter of the
document's family, with JSON filter options). PDF/UA is for text documents only, the only
ones LibreOffice tags; it needs a title, which LibreOffice takes from the document's
properties: an untitled document gets the first line of its text, as the other conversions
do.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

import psutil
from pypdf import PdfReader, PdfWriter
from pypdf.generic import BooleanObject, DictionaryObject, NameObject

from docjobs.config import Settings, get_settings
from docjobs.documents import DocumentError
from docjobs.domain.models import PdfVariant
from docjobs.office_files import (
    ZIP_MAGIC,
    OfficeFormat,
    UnpackCeilings,
    check_unpacked,
    check_variant,
    detect,
)
from docjobs.runner.engines import EngineOutput, PermanentError

log = logging.getLogger(__name__)

TIMEOUT_SETTING = "DOCJOBS_OFFICE__TIMEOUT_SECONDS"
_PROFILE_SETTINGS = {
    # (path, property): value. Macros never run, linked content is never fetched.
    ("/org.openoffice.Office.Common/Security/Scripting", "MacroSecurityLevel"): "3",
    ("/org.openoffice.Office.Common/Security/Scripting", "DisableMacrosExecution"): "true",
    ("/org.openoffice.Office.Common/Security/Scripting", "BlockUntrustedRefererLinks"): "true",
    # Writer: 0 never updates links; Calc: 1 never does.
    ("/org.openoffice.Office.Writer/Content/Update", "Link"): "0",
    ("/org.openoffice.Office.Calc/Content/Update", "Link"): "1",
}
_OUTPUT_TAIL = 2000
"""Characters of LibreOffice's output the log keeps when it fails."""
_EXPORT_FILTERS = {
    "text": "writer_pdf_Export",
    "spreadsheet": "calc_pdf_Export",
    "presentation": "impress_pdf_Export",
}
_VARIANT_OPTIONS: dict[PdfVariant, dict[str, dict[str, str]]] = {
    "pdf/a-2b": {"SelectPdfVersion": {"type": "long", "value": "2"}},
    "pdf/a-3b": {"SelectPdfVersion": {"type": "long", "value": "3"}},
    "pdf/ua-1": {"PDFUACompliance": {"type": "boolean", "value": "true"}},
}
_TITLE_CHARS = 120


def to_pdf(
    source: Path,
    workdir: Path,
    settings: Settings | None = None,
    *,
    pdf_variant: PdfVariant | None = None,
) -> EngineOutput:
    """``source`` as a PDF in ``workdir``, conforming to ``pdf_variant`` when given; its type
    is read from its content again, since a job need not have come through the API."""
    settings = settings or get_settings()
    office = settings.office
    ceilings = UnpackCeilings(office.max_unpacked_mb * 1024 * 1024, office.max_entries)
    try:
        found = detect(source, None, ceilings)
        check_variant(found, pdf_variant)
        with source.open("rb") as stream:
            if stream.read(len(ZIP_MAGIC)) == ZIP_MAGIC:
                check_unpacked(source, ceilings)
    except DocumentError as exc:
        raise PermanentError(_reason(exc.code), exc.message) from None
    document = workdir / f"document.{found.extension}"
    shutil.copyfile(source, document)
    outdir = workdir / "pdf"
    outdir.mkdir()
    _convert(document, outdir, settings, _target_format(found, pdf_variant))
    target = outdir / "document.pdf"
    if not target.exists():
        raise PermanentError(
            "UnreadableDocument", f"LibreOffice could not open the .{found.extension} document."
        )
    if pdf_variant == "pdf/ua-1":
        _ensure_title(target)
    page_count = _page_count(target, settings.ceilings.max_convert_pages)
    return EngineOutput(
        path=target,
        content_type="application/pdf",
        extension=".pdf",
        page_count=page_count,
        details={"page_count": page_count, "source_type": found.extension},
    )


def profile_dir() -> Path:
    """This worker's LibreOffice profile: in the worker's own ``TMPDIR`` (an attempt's
    scratch directory is gone when the attempt ends), one per process."""
    return Path(os.environ.get("TMPDIR") or tempfile.gettempdir()) / f"docjobs-office-{os.getpid()}"


def _target_format(found: OfficeFormat, variant: PdfVariant | None) -> str:
    """``--convert-to``'s argument: ``pdf``, or the family's PDF export filter with the
    variant's options."""
    if variant is None:
        return "pdf"
    options = json.dumps(_VARIANT_OPTIONS[variant], separators=(",", ":"))
    return f"pdf:{_EXPORT_FILTERS[found.family]}:{options}"


def _ensure_title(pdf: Path) -> None:
    """Titles an untitled PDF/UA file (``dc:title``, the info dictionary, shown as the
    window's title) with the first line of its text; one with a title is left untouched."""
    reader = PdfReader(pdf)
    if reader.metadata is not None and reader.metadata.title:
        return
    text = reader.pages[0].extract_text() if reader.pages else ""
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    title = first_line[:_TITLE_CHARS] or "Document"
    writer = PdfWriter(clone_from=reader)
    writer.add_metadata({"/Title": title})
    preferences = writer.root_object.get("/ViewerPreferences")
    if not isinstance(preferences, DictionaryObject):
        preferences = DictionaryObject()
        writer.root_object[NameObject("/ViewerPreferences")] = preferences
    preferences[NameObject("/DisplayDocTitle")] = BooleanObject(True)
    xmp = reader.xmp_metadata
    if xmp is not None:
        packet = xmp.stream.get_data().decode("utf-8")
        described = (
            '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{escape(title)}</rdf:li>'
            "</rdf:Alt></dc:title></rdf:Description>\n"
        )
        writer.xmp_metadata = packet.replace("</rdf:RDF>", described + "</rdf:RDF>", 1).encode()
    writer.write(pdf)


def _convert(document: Path, outdir: Path, settings: Settings, target_format: str) -> None:
    office = settings.office
    soffice = shutil.which(office.soffice)
    if soffice is None:
        raise PermanentError(
            "OfficeNotInstalled",
            f"LibreOffice ({office.soffice}) is not installed where this runner runs;"
            " scripts/setup and the runner image install it (DOCJOBS_OFFICE__SOFFICE).",
        )
    profile = _profile()
    log_file = outdir.parent / "soffice.log"
    command = [
        *_limits(office.timeout_seconds, office.max_output_mb),
        *(_no_network() if office.isolate_network else []),
        soffice,
        "--headless",
        "--norestore",
        "--nolockcheck",
        "--nodefault",
        "--nologo",
        f"-env:UserInstallation={profile.as_uri()}",
        "--convert-to",
        target_format,
        "--outdir",
        str(outdir),
        str(document),
    ]
    environment = {**os.environ, "HOME": str(profile), "TMPDIR": str(outdir.parent)}
    with log_file.open("wb") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
        )
        try:
            returncode = process.wait(timeout=office.timeout_seconds)
        except subprocess.TimeoutExpired:
            _kill_tree(process)
            # A profile LibreOffice was killed while writing may be half-written.
            shutil.rmtree(profile, ignore_errors=True)
            raise PermanentError(
                "OfficeTimeout",
                f"LibreOffice did not finish converting the document within"
                f" {office.timeout_seconds:g} s ({TIMEOUT_SETTING}).",
            ) from None
        finally:
            _kill_tree(process)  # the wait was interrupted (the CPU ceiling's signal)
    limit = office.max_output_mb * 1024 * 1024
    if any(written.stat().st_size >= limit for written in outdir.iterdir()):
        # The file-size limit stopped LibreOffice (SIGXFSZ) at the ceiling's exact size.
        raise PermanentError(
            "OutputTooLarge",
            f"The PDF grew past the ceiling of {office.max_output_mb} MiB"
            " (DOCJOBS_OFFICE__MAX_OUTPUT_MB).",
        )
    if returncode != 0:
        said = log_file.read_text(errors="replace")[-_OUTPUT_TAIL:]
        log.warning("soffice exited with %s: %s", returncode, said)
        shutil.rmtree(profile, ignore_errors=True)
        raise PermanentError(
            "UnreadableDocument", f"LibreOffice failed on the document (exit {returncode})."
        )


def _profile() -> Path:
    """The worker's profile, made with the safe settings where it is missing or changed."""
    profile = profile_dir()
    settings_file = profile / "user" / "registrymodifications.xcu"
    try:
        current = settings_file.read_text(encoding="utf-8")
    except OSError:
        current = ""
    if not all(
        _item(path, name, value) in current for (path, name), value in _PROFILE_SETTINGS.items()
    ):
        shutil.rmtree(profile, ignore_errors=True)
        settings_file.parent.mkdir(parents=True)
        items = "\n".join(
            _item(path, name, value) for (path, name), value in _PROFILE_SETTINGS.items()
        )
        settings_file.write_text(
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<oor:items xmlns:oor="http://openoffice.org/2001/registry"'
            ' xmlns:xs="http://www.w3.org/2001/XMLSchema"'
            ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
            f"{items}\n</oor:items>\n",
            encoding="utf-8",
        )
    return profile


def _item(path: str, name: str, value: str) -> str:
    # LibreOffice writes its items back one per line in this form, so a check by text holds.
    return (
        f'<item oor:path="{path}"><prop oor:name="{name}" oor:op="fuse">'
        f"<value>{value}</value></prop></item>"
    )


def _limits(timeout_seconds: float, max_output_mb: int) -> list[str]:
    """``prlimit`` for the LibreOffice processes: CPU time (a spinning process dies even if
    the worker that would have killed it is gone) and the size of any file they write."""
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        return []
    cpu = math.ceil(timeout_seconds) + 5
    return [prlimit, f"--cpu={cpu}", f"--fsize={max_output_mb * 1024 * 1024}", "--"]


@cache
def _no_network() -> list[str]:
    """``unshare`` into a network namespace of its own, where this process may make one."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    command = [unshare, "--net", "--map-root-user", "--"]
    try:
        probe = subprocess.run([*command, "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if probe.returncode != 0:
        log.info("LibreOffice runs with the network: unshare is refused here")
        return []
    return command


def _kill_tree(process: subprocess.Popen[bytes]) -> None:
    """Kill ``soffice`` and every process under it, the deepest first, so none is left
    to be adopted by init before its turn."""
    if process.poll() is not None:
        return  # reaped: its pid may be another process's by now
    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    for member in reversed(tree):
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    process.wait()


def _page_count(pdf: Path, ceiling: int) -> int:
    pages = len(PdfReader(pdf).pages)
    if pages > ceiling:
        raise PermanentError(
            "TooManyPages",
            f"The document lays out {pages} pages, more than the ceiling of {ceiling}"
            " (DOCJOBS_CEILINGS__MAX_CONVERT_PAGES).",
        )
    return pages


def _reason(code: str) -> str:
    """``document_too_complex`` as the runner's ``DocumentTooComplex``."""
    return "".join(word.capitalize() for word in code.split("_"))
