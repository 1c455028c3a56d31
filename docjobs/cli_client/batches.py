"""``docjobs batch submit|status|cancel``: many documents as one batch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .connection import DEFAULT_URL, KeyOpt, UrlOpt, client_of, fail

if TYPE_CHECKING:
    from docjobs.client.models import Batch

batch_app = typer.Typer(
    no_args_is_help=True, help="Submit many documents as one batch; follow or cancel it."
)


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
            raise fail(f"--param {pair!r}: write NAME=VALUE")
        parameters[name] = value
    with client_of(url, key) as client:
        batch = client.submit_batch(files, op, idempotency_key=idempotency_key, **parameters)
    for line in _batch_lines(batch):
        typer.echo(line)


@batch_app.command("status")
def batch_status(batch_id: str, key: KeyOpt, url: UrlOpt = DEFAULT_URL) -> None:
    """A batch's status, progress and counts."""
    with client_of(url, key) as client:
        batch = client.batch(batch_id)
    for line in _batch_lines(batch):
        typer.echo(line)


@batch_app.command("cancel")
def batch_cancel(batch_id: str, key: KeyOpt, url: UrlOpt = DEFAULT_URL) -> None:
    """Cancel every job of the batch still pending or processing."""
    with client_of(url, key) as client:
        batch = client.cancel_batch(batch_id)
    for line in _batch_lines(batch):
        typer.echo(line)
