"""``docjobs``: the one composition root; each subcommand imports only what it runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from docjobs.settings import Settings, get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys.")
app.add_typer(keys_app, name="keys")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Embedded mode's data directory [env DOCJOBS_DATA_DIR]."),
]


def _settings(**overrides: Any) -> Settings:
    given = {k: v for k, v in overrides.items() if v is not None}
    base = get_settings()
    return base.model_copy(update=given) if given else base


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    data_dir: DataDir = None,
    workers: Annotated[
        int | None, typer.Option(help="Runner workers (default: number of CPUs).")
    ] = None,
) -> None:
    """Run the HTTP API (embedded mode: job store, runners and storage in this process)."""
    import logging

    import uvicorn

    from docjobs.api.app import create_app
    from docjobs.backend import create_backend

    settings = _settings(data_dir=data_dir)
    if workers is not None:
        settings = settings.model_copy(
            update={"runner": settings.runner.model_copy(update={"concurrency": workers})}
        )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    backend = create_backend(settings)
    if not backend.keys.list_keys():
        key, record = backend.keys.create("default", "business")
        typer.echo(
            f"No API keys yet: created one for tenant '{record.tenant}' (plan {record.plan}).\n"
            f"Use it as the X-API-Key header; it is shown only now. More keys: docjobs keys create"
            f" --tenant NAME --data-dir {settings.data_dir}\n"
            f"API key: {key}"
        )
    typer.echo(f"docjobs on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    uvicorn.run(create_app(settings, backend), host=host, port=port, log_level="info")


def _key_store(data_dir: Path | None) -> Any:
    from docjobs.jobstore import SQLiteDatabase
    from docjobs.keys import SQLiteKeyStore

    settings = _settings(data_dir=data_dir)
    return SQLiteKeyStore(SQLiteDatabase(settings.data_dir.resolve() / "docjobs.db"))


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant the key acts for.")],
    plan: Annotated[str, typer.Option(help="free, starter, pro or business.")] = "free",
    data_dir: DataDir = None,
) -> None:
    """Create a key; it is printed once, alone on the last line."""
    try:
        key, record = _key_store(data_dir).create(tenant, plan)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"Created key {record.key_id} for tenant {record.tenant} (plan {record.plan}):")
    typer.echo(key)


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """List keys (ids only: the keys themselves are not stored)."""
    for record in _key_store(data_dir).list_keys():
        state = f"revoked {record.revoked_at:%Y-%m-%d}" if record.revoked_at else "active"
        typer.echo(f"{record.key_id}  {record.tenant}  {record.plan}  {state}")


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDir = None) -> None:
    """Revoke a key by its id."""
    if not _key_store(data_dir).revoke(key_id):
        typer.echo(f"error: no active key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"Revoked {key_id}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def runner(
    worker: Annotated[bool, typer.Option("--worker", help="Serve jobs from stdin.")] = False,
) -> None:
    """Run one attempt (DOCJOBS_JOB_SPEC) by the runner contract, or serve as a warm worker."""
    from docjobs.runner.main import main

    sys.exit(main(["--worker"] if worker else []))
