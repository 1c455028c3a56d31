"""``docjobs submit``: documents to process, one job each, followed with progress bars."""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from .connection import DEFAULT_URL, KeyOpt, UrlOpt, client_of, fail

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from docjobs.client import Client
    from docjobs.client.core import SourceFormat
    from docjobs.client.models import JobDetail

POLL_SECONDS = 0.5

SOURCE_FORMATS: dict[str, SourceFormat] = {
    ".html": "html",
    ".htm": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".json": "json",
}


class Operation(StrEnum):
    CONVERT = "convert"
    OCR = "ocr"
    PARSE = "parse"


class Tier(StrEnum):
    SIMPLE = "simple"
    ADVANCED = "advanced"
    VISION = "vision"
    AUTO = "auto"


@dataclass(frozen=True)
class Input:
    """One document named on the command line: a file, or a URL the server reads."""

    given: str
    """As the command line has it; printed with its job."""
    path: Path | None = None
    """The file; None for a URL."""

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else (self._url_path.name or self.given)

    @property
    def source_format(self) -> SourceFormat | None:
        """What ``convert`` takes the document for, by its extension (the server reads an
        Office document's kind from its content)."""
        from docjobs.office_files import FORMATS

        suffix = (self.path if self.path is not None else self._url_path).suffix.lower()
        return "office" if suffix[1:] in FORMATS else SOURCE_FORMATS.get(suffix)

    @property
    def _url_path(self) -> PurePosixPath:
        return PurePosixPath(urlsplit(self.given).path)


@dataclass
class Submitted:
    input: Input
    job_id: str
    task: TaskID | None = None
    job: JobDetail | None = None


@dataclass
class UploadRoute:
    """Whether a file goes to the server in its request or through a direct upload: always
    with ``--direct-upload``, else when it is larger than the server says a request may
    carry (asked once; a server that does not say gets every file in its request)."""

    client: Client
    always: bool
    request_limit: int | None = None
    asked: bool = False

    def direct(self, path: Path) -> bool:
        from docjobs.client.errors import NotFound

        if self.always:
            return True
        if not self.asked:
            self.asked = True
            with suppress(NotFound):
                self.request_limit = self.client.capabilities().limits.max_upload_bytes
        return self.request_limit is not None and path.stat().st_size > self.request_limit


def _submit_one(
    client: Client,
    item: Input,
    route: UploadRoute,
    operation: Operation,
    tier: Tier,
    template: str | None,
) -> str:
    document, source_url, upload_id = item.path, None, None
    if item.path is None:
        source_url = item.given
    elif route.direct(item.path):
        document, upload_id = None, client.upload(item.path)
    if operation is Operation.OCR:
        return client.ocr(document, tier.value, source_url=source_url, upload_id=upload_id).job_id
    if operation is Operation.PARSE:
        assert template is not None  # checked before anything is sent
        return client.parse(document, template, source_url=source_url, upload_id=upload_id).job_id
    source_format = item.source_format
    assert source_format is not None  # checked before anything is sent
    return client.convert(
        document, source_format, source_url=source_url, upload_id=upload_id
    ).job_id


def _check_submission(operation: Operation, template: str | None, inputs: list[Input]) -> None:
    if operation is Operation.PARSE and template is None:
        raise fail("--op parse needs --template ID", 2)
    if not inputs:
        raise fail("nothing to submit: give FILE... or --source-url URL", 2)


def _refusal(item: Input, operation: Operation) -> str | None:
    """Why ``item`` cannot be sent at all, before the server is asked."""
    if item.path is not None and not item.path.is_file():
        return "no such file"
    if operation is Operation.CONVERT and item.source_format is None:
        from docjobs.office_files import FORMATS

        endings = [*SOURCE_FORMATS, *(f".{extension}" for extension in FORMATS)]
        return f"convert takes files ending in {', '.join(endings)}"
    return None


def _follow(client: Client, submitted: list[Submitted], timeout: float) -> None:
    """Polls each unfinished job and draws a bar of pages per job, and one of finished files
    when there are several."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TextColumn("{task.fields[state]}"),
    )
    deadline = time.monotonic() + timeout
    with Progress(*columns, console=Console(stderr=True)) as bars:
        overall = None
        if len(submitted) > 1:
            overall = bars.add_task(
                "all files", total=len(submitted), unit="files", state="", completed=0
            )
        for item in submitted:
            item.task = bars.add_task(item.input.name, total=None, unit="pages", state="pending")
        while waiting := [item for item in submitted if not (item.job and item.job.finished)]:
            if time.monotonic() >= deadline:
                raise fail(f"{len(waiting)} job(s) still unfinished after {timeout:g} s")
            for item in waiting:
                item.job = client.jobs.get(item.job_id)
                _draw(bars, item)
            if overall is not None:
                finished = sum(1 for item in submitted if item.job and item.job.finished)
                bars.update(overall, completed=finished)
            if any(not (item.job and item.job.finished) for item in submitted):
                time.sleep(POLL_SECONDS)


def _draw(bars: Progress, item: Submitted) -> None:
    assert item.task is not None and item.job is not None
    job, progress = item.job, item.job.progress
    if progress is not None and progress.pages_total > 0:
        done = progress.pages_total if job.status == "complete" else progress.pages_done
        bars.update(item.task, total=progress.pages_total, completed=done, state=job.status)
    elif job.finished:  # no pages to count (a conversion): a finished job fills its bar
        bars.update(item.task, total=1, completed=1, unit="", state=job.status)
    else:
        bars.update(item.task, state=job.status)


def submit(
    op: Annotated[Operation, typer.Option("--op", help="What to do with each document.")],
    key: KeyOpt,
    files: Annotated[
        list[Path] | None,
        typer.Argument(metavar="FILE", help="Documents to submit, one job each."),
    ] = None,
    source_url: Annotated[
        list[str] | None,
        typer.Option(
            "--source-url",
            help="A document the server fetches instead (https://..., or s3://bucket/key of a"
            " bucket the installation lets the tenant read); repeatable, one job each.",
            show_default=False,
        ),
    ] = None,
    direct_upload: Annotated[
        bool,
        typer.Option(
            "--direct-upload",
            help="Put each file to the server's store first (POST /api/v1/uploads) and submit"
            " it by its upload id; done anyway for a file larger than the server's request"
            " limit.",
        ),
    ] = False,
    tier: Annotated[Tier, typer.Option(help="OCR tier (--op ocr).")] = Tier.SIMPLE,
    template: Annotated[
        str | None, typer.Option(help="Template id (--op parse).", show_default=False)
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the jobs with progress bars until they end.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 3600.0,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Submit documents, one job each: files, and URLs the server reads (--source-url).
    Prints `FILE  JOB_ID` (or `URL  JOB_ID`) for each accepted document and
    `FILE: refused: REASON` for each refused one, then exits 1 if any was refused. With
    --wait, follows the jobs and exits 1 as well when one does not complete."""
    from docjobs.client import DocjobsError

    inputs = [Input(str(path), path) for path in files or []]
    inputs += [Input(given) for given in source_url or []]
    _check_submission(op, template, inputs)
    refused = False
    with client_of(url, key) as client:
        route = UploadRoute(client, direct_upload)
        submitted: list[Submitted] = []
        for document in inputs:
            reason = _refusal(document, op)
            if reason is None:
                try:
                    job_id = _submit_one(client, document, route, op, tier, template)
                except DocjobsError as exc:
                    if exc.status_code in (401, 403):
                        raise  # a wrong key refuses every file alike: one line says it
                    reason = f"{exc.code}: {exc.message}"
            if reason is not None:
                typer.echo(f"{document.given}: refused: {reason}", err=True)
                refused = True
                continue
            submitted.append(Submitted(document, job_id))
            typer.echo(f"{document.given}  {job_id}")
        if wait and submitted:
            _follow(client, submitted, timeout)
    unfinished = [item for item in submitted if wait and item.job and item.job.status != "complete"]
    for item in unfinished:
        assert item.job is not None
        why = f": {item.job.error.code}: {item.job.error.message}" if item.job.error else ""
        typer.echo(f"{item.input.given}: job {item.job_id} {item.job.status}{why}", err=True)
    if refused or unfinished:
        raise typer.Exit(1)
