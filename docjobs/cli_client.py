"""The ``docjobs`` commands that talk to a running server through :mod:`docjobs.client`:
``submit``, ``jobs list|get|cancel|delete|result``, ``templates apply``,
``webhooks list|create|update|delete|deliveries|replay`` and ``batch submit|status|cancel``.

The client, rich and yaml are imported where a command runs: every ``docjobs`` start (a
runner's too) loads this module.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from docjobs.client import Client
    from docjobs.client.core import JobStatus, SourceFormat
    from docjobs.client.models import Batch, Delivery, JobDetail, JobListEntry, WebhookEndpoint

jobs_app = typer.Typer(no_args_is_help=True, help="Look at, cancel and erase a server's jobs.")
templates_app = typer.Typer(no_args_is_help=True, help="Manage a server's parse templates.")
batch_app = typer.Typer(
    no_args_is_help=True, help="Submit many documents as one batch; follow or cancel it."
)
webhooks_app = typer.Typer(
    no_args_is_help=True, help="Manage the endpoints told about the tenant's finished jobs."
)

UrlOpt = Annotated[
    str, typer.Option("--url", envvar="DOCJOBS_URL", help="The docjobs server's base URL.")
]
KeyOpt = Annotated[
    str, typer.Option("--key", envvar="DOCJOBS_API_KEY", help="API key (X-API-Key).")
]
DEFAULT_URL = "http://127.0.0.1:8000"
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


class Status(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def _client(url: str, key: str) -> Iterator[Client]:
    """A client whose API errors and unreachable servers end the command with one line."""
    import httpx

    from docjobs.client import Client, DocjobsError

    try:
        with Client(url, key) as client:
            yield client
    except DocjobsError as exc:
        raise _fail(str(exc)) from None
    except httpx.HTTPError as exc:
        raise _fail(f"{url}: {exc}") from None


# --- submit ----------------------------------------------------------------------------------


@dataclass
class Submitted:
    path: Path
    job_id: str
    task: TaskID | None = None
    job: JobDetail | None = None


def _submit_one(
    client: Client, path: Path, operation: Operation, tier: Tier, template: str | None
) -> str:
    if operation is Operation.OCR:
        return client.ocr(path, tier.value).job_id
    if operation is Operation.PARSE:
        assert template is not None  # checked before anything is sent
        return client.parse(path, template).job_id
    source_format = _source_format(path)
    assert source_format is not None  # checked before anything is sent
    return client.convert(path, source_format).job_id


def _source_format(path: Path) -> SourceFormat | None:
    """What ``convert`` takes ``path`` for, by its extension (the server reads an Office
    document's kind from its content)."""
    from docjobs.office_files import FORMATS

    suffix = path.suffix.lower()
    return "office" if suffix[1:] in FORMATS else SOURCE_FORMATS.get(suffix)


def _check_submission(operation: Operation, template: str | None) -> None:
    if operation is Operation.PARSE and template is None:
        raise _fail("--op parse needs --template ID", 2)


def _refusal(path: Path, operation: Operation) -> str | None:
    """Why ``path`` cannot be sent at all, before the server is asked."""
    if not path.is_file():
        return "no such file"
    if operation is Operation.CONVERT and _source_format(path) is None:
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
            item.task = bars.add_task(item.path.name, total=None, unit="pages", state="pending")
        while waiting := [item for item in submitted if not (item.job and item.job.finished)]:
            if time.monotonic() >= deadline:
                raise _fail(f"{len(waiting)} job(s) still unfinished after {timeout:g} s")
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
    files: Annotated[
        list[Path], typer.Argument(metavar="FILE", help="Documents to submit, one job each.")
    ],
    op: Annotated[Operation, typer.Option("--op", help="What to do with each file.")],
    key: KeyOpt,
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
    """Submit documents, one job each. Prints `FILE  JOB_ID` for each accepted file and
    `FILE: refused: REASON` for each refused one, then exits 1 if any was refused. With
    --wait, follows the jobs and exits 1 as well when one does not complete."""
    from docjobs.client import DocjobsError

    _check_submission(op, template)
    refused = False
    with _client(url, key) as client:
        submitted: list[Submitted] = []
        for path in files:
            reason = _refusal(path, op)
            if reason is None:
                try:
                    job_id = _submit_one(client, path, op, tier, template)
                except DocjobsError as exc:
                    if exc.status_code in (401, 403):
                        raise  # a wrong key refuses every file alike: one line says it
                    reason = f"{exc.code}: {exc.message}"
            if reason is not None:
                typer.echo(f"{path}: refused: {reason}", err=True)
                refused = True
                continue
            submitted.append(Submitted(path, job_id))
            typer.echo(f"{path}  {job_id}")
        if wait and submitted:
            _follow(client, submitted, timeout)
    unfinished = [item for item in submitted if wait and item.job and item.job.status != "complete"]
    for item in unfinished:
        assert item.job is not None
        why = f": {item.job.error.code}: {item.job.error.message}" if item.job.error else ""
        typer.echo(f"{item.path}: job {item.job_id} {item.job.status}{why}", err=True)
    if refused or unfinished:
        raise typer.Exit(1)


# --- jobs ------------------------------------------------------------------------------------


@jobs_app.command("list")
def jobs_list(
    key: KeyOpt,
    status: Annotated[Status | None, typer.Option(help="Only jobs in this state.")] = None,
    operation: Annotated[
        str | None,
        typer.Option(
            help="Only jobs of this operation: convert, ocr.simple, ocr.advanced, ocr.vision,"
            " ocr.auto or extract.",
            show_default=False,
        ),
    ] = None,
    file_name: Annotated[
        str | None,
        typer.Option(help="Only files whose name starts with this.", show_default=False),
    ] = None,
    created_after: Annotated[
        datetime | None,
        typer.Option(help="Only jobs created after this time (UTC).", show_default=False),
    ] = None,
    created_before: Annotated[
        datetime | None,
        typer.Option(help="Only jobs created before this time (UTC).", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option(help="Jobs per page, newest first.")] = 20,
    cursor: Annotated[
        str | None,
        typer.Option(
            help="Show the page this cursor (printed below a page) points to.", show_default=False
        ),
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Show every page.")] = False,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """List the tenant's jobs, newest first: id, status, operation, file, pages, created,
    and why a failed job failed. When more follow, says how to see them."""
    wanted: JobStatus | None = status.value if status else None
    rows: list[tuple[str, ...]] = []
    with _client(url, key) as client:
        while True:
            page = client.jobs.list(
                wanted,
                limit,
                cursor=cursor,
                operation=operation,
                created_after=created_after,
                created_before=created_before,
                file_name=file_name,
            )
            rows += [_job_row(job) for job in page.jobs]
            cursor = page.next_cursor
            if not every or cursor is None:
                break
    if not rows:
        typer.echo("No jobs.", err=True)
        return
    _table(("ID", "STATUS", "OPERATION", "FILE", "PAGES", "CREATED", "REASON"), rows)
    if cursor is not None:
        typer.echo(f"{len(rows)} of {page.total} jobs; next page: --cursor {cursor}", err=True)


def _job_row(job: JobListEntry) -> tuple[str, ...]:
    progress = job.progress
    if progress is not None and progress.pages_total:
        pages = f"{progress.pages_done}/{progress.pages_total}"
    else:
        pages = "" if job.page_count is None else str(job.page_count)
    reason = f"{job.error.code}: {job.error.message}" if job.error else ""
    return (job.job_id, job.status, job.operation, job.file_name, pages, job.created_at, reason)


@jobs_app.command("get")
def jobs_get(job_id: str, key: KeyOpt, url: UrlOpt = DEFAULT_URL) -> None:
    """Print a job as JSON."""
    with _client(url, key) as client:
        job = client.jobs.get(job_id)
    typer.echo(job.model_dump_json(indent=2))


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, key: KeyOpt, url: UrlOpt = DEFAULT_URL) -> None:
    """Cancel a pending or running job (`delete` erases a finished one)."""
    with _client(url, key) as client:
        client.jobs.cancel(job_id)
    typer.echo(f"Cancelled {job_id}")


@jobs_app.command("delete")
def jobs_delete(job_id: str, key: KeyOpt, url: UrlOpt = DEFAULT_URL) -> None:
    """Erase a finished job for good (its document, result and records); a pending or
    running one is cancelled instead, and erased by a second delete once it has ended."""
    with _client(url, key) as client:
        finished = client.jobs.get(job_id).finished
        client.jobs.delete(job_id)
    typer.echo(f"Erased {job_id}" if finished else f"Cancelled {job_id}")


@jobs_app.command("result")
def jobs_result(
    job_id: str,
    key: KeyOpt,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write it here [standard output].")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Fetch a complete job's result."""
    with _client(url, key) as client:
        content = client.jobs.result(job_id)
    if output is None:
        sys.stdout.buffer.write(content)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(content)


# --- templates -------------------------------------------------------------------------------


TEMPLATE_KIND = "DocumentTemplate"


def _read_spec(path: Path) -> tuple[dict[str, Any], str | None]:
    """The template in ``path``, and the id a DocumentTemplate resource names (its
    ``metadata.name``, the ``templateId`` clients send); a plain template names none."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        spec = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise _fail(f"{path}: {exc}", 2) from None
    named: str | None = None
    if isinstance(spec, dict) and spec.get("kind") == TEMPLATE_KIND:
        metadata = spec.get("metadata")
        named = metadata.get("name") if isinstance(metadata, dict) else None
        spec = spec.get("spec")
        if isinstance(spec, dict):
            # Whose template it is follows from the key, not from the file.
            spec = {k: v for k, v in spec.items() if k != "tenant"}
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise _fail(
            f"{path}: a template is a mapping with a 'name', or a {TEMPLATE_KIND} resource"
            " whose spec has one",
            2,
        )
    return spec, named if isinstance(named, str) else None


@templates_app.command("apply")
def templates_apply(
    file: Annotated[
        Path,
        typer.Argument(help="A template (JSON or YAML), or a DocumentTemplate resource."),
    ],
    key: KeyOpt,
    template_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="Replace this template. Default: the resource's metadata.name if the server"
            " has it, else the template of the same name, else a new one.",
            show_default=False,
        ),
    ] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Create a template from FILE, or replace the one it names; prints `ID NAME` last."""
    from docjobs.client.errors import TemplateNotFound

    spec, named = _read_spec(file)
    with _client(url, key) as client:
        if template_id is None and named is not None:
            with suppress(TemplateNotFound):
                template_id = client.templates.get(named).template_id
        if template_id is None:
            same_name = [t for t in client.templates.list() if t.name == spec["name"]]
            template_id = same_name[0].template_id if same_name else None
        if template_id is None:
            template, verb = client.templates.create(spec), "Created"
        else:
            template, verb = client.templates.update(template_id, spec), "Replaced"
    typer.echo(f"{verb} template:")
    typer.echo(f"{template.template_id}  {template.name}")


@templates_app.command("list")
def templates_list(key: KeyOpt, url: UrlOpt = DEFAULT_URL) -> None:
    """List the tenant's templates: id, name, fields, last change."""
    with _client(url, key) as client:
        templates = client.templates.list()
    rows = [(t.template_id, t.name, str(len(t.fields)), t.updated_at) for t in templates]
    _table(("ID", "NAME", "FIELDS", "UPDATED"), rows)


@templates_app.command("get")
def templates_get(template_id: str, key: KeyOpt, url: UrlOpt = DEFAULT_URL) -> None:
    """Print a template as JSON."""
    with _client(url, key) as client:
        template = client.templates.get(template_id)
    typer.echo(template.model_dump_json(indent=2, by_alias=True))


@templates_app.command("delete")
def templates_delete(template_id: str, key: KeyOpt, url: UrlOpt = DEFAULT_URL) -> None:
    """Delete a template; jobs that ran with it keep their results."""
    with _client(url, key) as client:
        client.templates.delete(template_id)
    typer.echo(f"Deleted {template_id}")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns as wide as their longest cell, under a header."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


# --- webhooks --------------------------------------------------------------------------------


def _endpoint_line(endpoint: WebhookEndpoint) -> str:
    events = ",".join(endpoint.events)
    return f"{endpoint.id}  {endpoint.url}  {events}  {endpoint.description}".rstrip()


@webhooks_app.command("list")
def webhooks_list(key: KeyOpt, url: UrlOpt = DEFAULT_URL) -> None:
    """List the key's tenant's webhook endpoints: id, URL, events, description."""
    with _client(url, key) as client:
        endpoints = client.webhooks.list()
    for endpoint in endpoints:
        typer.echo(_endpoint_line(endpoint))


@webhooks_app.command("create")
def webhooks_create(
    endpoint_url: Annotated[str, typer.Argument(help="Where events are POSTed.")],
    key: KeyOpt,
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event",
            help="An event to send (job.completed, job.failed, job.cancelled); repeatable; "
            "all of them when not given.",
            show_default=False,
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="A note for people.")] = "",
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Register an endpoint; prints `ID URL` and its signing secret, which is shown only now."""
    with _client(url, key) as client:
        endpoint = client.webhooks.create(endpoint_url, event or None, description)
    typer.echo("Created webhook endpoint:")
    typer.echo(f"{endpoint.id}  {endpoint.url}  {','.join(endpoint.events)}")
    typer.echo(f"secret: {endpoint.secret}")


@webhooks_app.command("update")
def webhooks_update(
    endpoint_id: str,
    key: KeyOpt,
    endpoint_url: Annotated[
        str | None,
        typer.Argument(help="Where events are POSTed from now on; unchanged when not given."),
    ] = None,
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event",
            help="An event to send (job.completed, job.failed, job.cancelled); repeatable; "
            "replaces the endpoint's events; unchanged when not given.",
            show_default=False,
        ),
    ] = None,
    description: Annotated[
        str | None,
        typer.Option(help='A note for people ("" clears it); unchanged when not given.'),
    ] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Change an endpoint's URL, events or description; its secret stays. Prints it as
    `list` does."""
    if endpoint_url is None and not event and description is None:
        raise _fail("nothing to change: give a new URL, --event or --description", 2)
    with _client(url, key) as client:
        endpoint = client.webhooks.update(
            endpoint_id, url=endpoint_url, events=event or None, description=description
        )
    typer.echo("Updated webhook endpoint:")
    typer.echo(_endpoint_line(endpoint))


@webhooks_app.command("delete")
def webhooks_delete(endpoint_id: str, key: KeyOpt, url: UrlOpt = DEFAULT_URL) -> None:
    """Delete an endpoint: no more events go to it."""
    with _client(url, key) as client:
        client.webhooks.delete(endpoint_id)
    typer.echo(f"Deleted {endpoint_id}")


DeliveriesOf = Annotated[
    str,
    typer.Argument(
        help="An endpoint id (wh_...), or a job id (job_...) for that job's deliveries to every"
        " target, its own webhookUrl included.",
        metavar="ENDPOINT_ID|JOB_ID",
    ),
]


def _answer(delivery: Delivery) -> str:
    """The last try's answer in words: ``HTTP 500``, or the error that stood for one."""
    last = delivery.last_answer
    if last is None:
        return "-"
    return f"HTTP {last.status_code}" if last.status_code is not None else last.error or "-"


def _delivery_row(delivery: Delivery) -> tuple[str, ...]:
    delivered = "yes" if delivery.delivered else "no"
    when, tries, answer = delivery.timestamp, str(delivery.tries), _answer(delivery)
    return (delivery.id, delivery.event, when, tries, answer, delivered, delivery.target)


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    of: DeliveriesOf,
    key: KeyOpt,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Deliveries per page.")] = 20,
    cursor: Annotated[
        str | None, typer.Option(help="The `next cursor` a previous page printed.")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """List settled webhook deliveries, newest job first: id, event, time, tries, last
    answer, delivered, target; then the cursor of the next page, if any."""
    next_cursor: str | None = None
    with _client(url, key) as client:
        if of.startswith("job_"):
            deliveries = client.webhooks.job_deliveries(of)
        else:
            page = client.webhooks.deliveries(of, limit=limit, cursor=cursor)
            deliveries, next_cursor = page.deliveries, page.next_cursor
    header = ("ID", "EVENT", "TIME", "TRIES", "LAST ANSWER", "DELIVERED", "TARGET")
    _table(header, [_delivery_row(d) for d in deliveries])
    if next_cursor:
        typer.echo(f"next cursor: {next_cursor}")


@webhooks_app.command("replay")
def webhooks_replay(
    of: DeliveriesOf,
    delivery_id: Annotated[str, typer.Argument(help="The ID `deliveries` lists.")],
    key: KeyOpt,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Send a delivery again (same webhook-id and body, signed afresh) and print the
    receiver's answer; exits 1 when it is not a 2xx."""
    with _client(url, key) as client:
        if of.startswith("job_"):
            replayed = client.webhooks.replay_job_delivery(of, delivery_id)
        else:
            replayed = client.webhooks.replay(of, delivery_id)
    answer = replayed.replay
    if answer is None:
        typer.echo("Replay sent; no answer yet: see `docjobs webhooks deliveries`.")
        return
    typer.echo(f"Replayed {delivery_id}: {_answer(replayed.delivery)}")
    if answer.status_code is None or not 200 <= answer.status_code < 300:
        raise typer.Exit(1)


# --- batches ---------------------------------------------------------------------------------


def _batch_lines(batch: Batch) -> Iterator[str]:
    counts = batch.counts
    yield (
        f"{batch.batch_id}  {batch.status}  {batch.progress.finished}/{batch.progress.total}  "
        f"complete {counts.complete}  failed {counts.failed}  cancelled {counts.cancelled}  "
        f"pending {counts.pending}  processing {counts.processing}"
    )
    for document in batch.documents:
        outcome = document.job_id or f"refused: {document.error.code if document.error else ''}"
        yield f"  {document.index}  {document.file_name}  {outcome}"


@batch_app.command("submit")
def batch_submit(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False)],
    key: KeyOpt,
    op: Annotated[
        str,
        typer.Option(
            "--op", help="The route every file runs: convert/markdown-to-pdf, ocr/extract/simple…"
        ),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="NAME=VALUE: a form parameter of that route; repeatable."),
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Names the batch: sent again, the same batch answers.")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Submit the files as one batch; prints the batch and each file's job."""
    parameters: dict[str, str] = {}
    for pair in param or []:
        name, sep, value = pair.partition("=")
        if not sep:
            raise _fail(f"--param {pair!r}: write NAME=VALUE")
        parameters[name] = value
    with _client(url, key) as client:
        batch = client.submit_batch(files, op, idempotency_key=idempotency_key, **parameters)
    for line in _batch_lines(batch):
        typer.echo(line)


@batch_app.command("status")
def batch_status(batch_id: str, key: KeyOpt, url: UrlOpt = DEFAULT_URL) -> None:
    """A batch's status, progress and counts."""
    with _client(url, key) as client:
        batch = client.batch(batch_id)
    for line in _batch_lines(batch):
        typer.echo(line)


@batch_app.command("cancel")
def batch_cancel(batch_id: str, key: KeyOpt, url: UrlOpt = DEFAULT_URL) -> None:
    """Cancel every job of the batch still pending or processing."""
    with _client(url, key) as client:
        batch = client.cancel_batch(batch_id)
    for line in _batch_lines(batch):
        typer.echo(line)
