"""The ``office`` section: how Office documents are converted to PDF by LibreOffice."""

from __future__ import annotations

from pydantic import BaseModel, Field


class OfficeSettings(BaseModel):
    """LibreOffice's bounds for one document (``DOCJOBS_OFFICE__*``); the page ceiling is
    ``ceilings.max_convert_pages``, as for every conversion."""

    soffice: str = "soffice"
    """LibreOffice's command, looked up on ``PATH`` unless a path is given."""
    uno_python: str = "/usr/bin/python3"
    """The Python that has LibreOffice's ``uno`` module (Debian's ``python3-uno`` is built
    for the system's Python, not docjobs' own): it runs the bridge a worker converts
    through."""
    documents_per_process: int = Field(default=100, ge=1)
    """Documents; 100. How many documents a worker's LibreOffice converts before it is
    closed and the next document starts a new one (about a second). LibreOffice is kept
    running across documents because its start costs more than a small document's
    conversion; the restart bounds what one document could leave behind for the next and
    the memory LibreOffice gathers. A failure or a timeout ends it at once, whatever the
    count."""
    timeout_seconds: float = Field(default=120.0, gt=0)
    """Seconds; 120. Wall-clock limit of one conversion: past it, LibreOffice and every
    process under it are killed and the job fails with ``OfficeTimeout``; the next document
    starts a new LibreOffice."""
    start_timeout_seconds: float = Field(default=60.0, gt=0)
    """Seconds; 60. Wall-clock limit of a LibreOffice start (a few seconds; the first in a
    worker also makes its profile), apart from the document's own limit: past it, the
    attempt fails and is tried again."""
    max_unpacked_mb: int = Field(default=512, ge=1)
    """MiB; 512. Most a zip-based document (docx, xlsx, pptx, odt, ods, odp) may unpack
    to, counted in its zip directory when it is uploaded and again by inflating it before
    conversion: a zip bomb is refused (``document_too_complex``)."""
    max_entries: int = Field(default=10_000, ge=1)
    """Entries; 10,000. Most files a zip-based document may hold."""
    max_output_mb: int = Field(default=256, ge=1)
    """MiB; 256. Largest file LibreOffice may write (its file-size limit); a larger PDF
    fails the job (``OutputTooLarge``)."""
    isolate_network: bool = True
    """Run LibreOffice in a network namespace of its own (no interface but a down
    loopback) where the kernel lets the runner make one (``unshare``); where it does not
    (most container runtimes' default seccomp profile), remote content is still refused
    by LibreOffice's own settings in the worker's profile."""
