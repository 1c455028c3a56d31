"""What every client command shares: the server's URL and key options, a client that ends
the command with one line on an API error, and plain tables."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from docjobs.client import Client

UrlOpt = Annotated[
    str, typer.Option("--url", envvar="DOCJOBS_URL", help="The docjobs server's base URL.")
]
KeyOpt = Annotated[
    str, typer.Option("--key", envvar="DOCJOBS_API_KEY", help="API key (X-API-Key).")
]
DEFAULT_URL = "http://127.0.0.1:8000"


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def client_of(url: str, key: str) -> Iterator[Client]:
    """A client whose API errors and unreachable servers end the command with one line."""
    import httpx

    from docjobs.client import Client, DocjobsError

    try:
        with Client(url, key) as client:
            yield client
    except DocjobsError as exc:
        raise fail(str(exc)) from None
    except httpx.HTTPError as exc:
        raise fail(f"{url}: {exc}") from None


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns as wide as their longest cell, under a header."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
