"""``docjobs``: the one composition root; each subcommand imports only what it runs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from docjobs import cli_client
from docjobs.config import Settings, get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys.")
app.add_typer(keys_app, name="keys")
models_app = typer.Typer(no_args_is_help=True, help="Manage model weight files (docTR).")
app.add_typer(models_app, name="models")
app.command()(cli_client.submit)
app.add_typer(cli_client.jobs_app, name="jobs")
app.add_typer(cli_client.templates_app, name="templates")
app.add_typer(cli_client.webhooks_app, name="webhooks")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Embedded mode's data directory [env DOCJOBS_DATA_DIR]."),
]


class BackendName(StrEnum):
    EMBEDDED = "embedded"
    KUBERNETES = "kubernetes"


BackendOpt = Annotated[
    BackendName | None,
    typer.Option("--backend", help="Where jobs and keys live [env DOCJOBS_BACKEND; embedded]."),
]
NamespaceOpt = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        help="Kubernetes backend's namespace [env DOCJOBS_KUBERNETES__NAMESPACE, POD_NAMESPACE;"
        " default]. The cluster comes from KUBECONFIG or the pod's service account.",
    ),
]


def _settings(**overrides: Any) -> Settings:
    given = {k: v for k, v in overrides.items() if v is not None}
    base = get_settings()
    return base.model_copy(update=given) if given else base


def _mode_settings(
    data_dir: Path | None, backend: BackendName | None, namespace: str | None
) -> Settings:
    settings = _settings(data_dir=data_dir, backend=backend.value if backend else None)
    if namespace is None:
        return settings
    kubernetes = settings.kubernetes.model_copy(update={"namespace": namespace})
    return settings.model_copy(update={"kubernetes": kubernetes})


@contextmanager
def _kube_errors(settings: Settings) -> Iterator[None]:
    """In kubernetes mode, API-server answers and kubeconfig problems as one-line errors."""
    if settings.backend != "kubernetes":
        yield
        return
    from docjobs.kube.client import CLIENT_ERRORS

    try:
        yield
    except CLIENT_ERRORS as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    data_dir: DataDir = None,
    workers: Annotated[
        int | None, typer.Option(help="Runner workers (default: number of CPUs).")
    ] = None,
    backend_name: BackendOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Run the HTTP API. Embedded mode: job store, runners and storage in this process.
    Kubernetes mode: DocumentJobs in NAMESPACE, files in S3 (DOCJOBS_S3_* variables)."""
    import logging

    import uvicorn

    from docjobs.api.app import create_app
    from docjobs.backends.embedded.backend import EmbeddedBackend
    from docjobs.backends.embedded.lock import DataDirectoryInUse
    from docjobs.bootstrap import create_backend

    settings = _mode_settings(data_dir, backend_name, namespace)
    if workers is not None:
        settings = settings.model_copy(
            update={"runner": settings.runner.model_copy(update={"concurrency": workers})}
        )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with _kube_errors(settings):
        backend = create_backend(settings)
    if isinstance(backend, EmbeddedBackend):
        try:
            backend.lock.acquire()
        except DataDirectoryInUse as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    if settings.backend == "kubernetes":
        typer.echo(
            f"Jobs: DocumentJobs in namespace {settings.kubernetes.namespace}; files: bucket"
            f" {settings.s3.bucket} at {settings.s3.endpoint}. API keys: docjobs keys create"
            f" --tenant NAME --backend kubernetes --namespace {settings.kubernetes.namespace}"
        )
    elif not backend.keys.list_keys():
        key, record = backend.keys.create("default", _first_key_plan(settings.rate_limits.plans))
        typer.echo(
            f"No API keys yet: created one for tenant '{record.tenant}' (plan {record.plan}).\n"
            f"Use it as the X-API-Key header; it is shown only now. More keys: docjobs keys create"
            f" --tenant NAME --data-dir {settings.data_dir}\n"
            f"API key: {key}"
        )
    typer.echo(f"docjobs on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    uvicorn.run(create_app(settings, backend), host=host, port=port, log_level="info")


def _first_key_plan(plans: dict[str, str]) -> str:
    """The plan of the key a first start creates: ``business`` unless the settings lack it."""
    return "business" if "business" in plans else next(iter(plans))


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant the key acts for.")],
    plan: Annotated[
        str,
        typer.Option(
            help="One of the plans DOCJOBS_RATE_LIMITS__PLANS defines"
            " (by default free, starter, pro, business)."
        ),
    ] = "free",
    data_dir: DataDir = None,
    backend: BackendOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Create a key; it is printed once, alone on the last line."""
    from docjobs.bootstrap import create_key_store

    settings = _mode_settings(data_dir, backend, namespace)
    try:
        with _kube_errors(settings):
            key, record = create_key_store(settings).create(tenant, plan)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"Created key {record.key_id} for tenant {record.tenant} (plan {record.plan}):")
    typer.echo(key)


@keys_app.command("list")
def keys_list(
    data_dir: DataDir = None, backend: BackendOpt = None, namespace: NamespaceOpt = None
) -> None:
    """List keys (ids only: the keys themselves are not stored)."""
    from docjobs.bootstrap import create_key_store

    settings = _mode_settings(data_dir, backend, namespace)
    with _kube_errors(settings):
        records = create_key_store(settings).list_keys()
    for record in records:
        state = f"revoked {record.revoked_at:%Y-%m-%d}" if record.revoked_at else "active"
        typer.echo(f"{record.key_id}  {record.tenant}  {record.plan}  {state}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: str,
    data_dir: DataDir = None,
    backend: BackendOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Revoke a key by its id."""
    from docjobs.bootstrap import create_key_store

    settings = _mode_settings(data_dir, backend, namespace)
    with _kube_errors(settings):
        revoked = create_key_store(settings).revoke(key_id)
    if not revoked:
        typer.echo(f"error: no active key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"Revoked {key_id}")


@models_app.command("fetch")
def models_fetch(
    url: Annotated[str, typer.Option(help="Where the weights file is (http or https).")],
    sha256: Annotated[str, typer.Option(help="The file's SHA-256; nothing is kept without it.")],
    name: Annotated[
        str | None,
        typer.Option(help="File name in the directory, e.g. db_resnet50.pt [the URL's last part]."),
    ] = None,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Weights directory [env DOCJOBS_DOCTR__WEIGHTS_DIR; <data dir>/models].",
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Download a weights file into the weights directory, checking its SHA-256; for image
    builds and air-gapped mirrors (runners never download weights themselves)."""
    from docjobs.runner.weights import WeightsError, fetch

    settings = _settings(data_dir=data_dir)
    target_dir = directory or settings.doctr.weights_directory(settings.data_dir)
    try:
        path = fetch(url, sha256, target_dir, name)
    except (WeightsError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{path}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def runner(
    worker: Annotated[bool, typer.Option("--worker", help="Serve jobs from stdin.")] = False,
) -> None:
    """Run one attempt (its manifest: DOCJOBS_RUNNER__MANIFEST_URL) by the runner contract,
    or serve as a warm worker."""
    from docjobs.runner.main import main

    sys.exit(main(["--worker"] if worker else []))


@app.command()
def crd(
    template: Annotated[
        bool, typer.Option("--template", help="The DocumentTemplate CRD instead.")
    ] = False,
) -> None:
    """Print the DocumentJob CustomResourceDefinition (the source of crds/documentjob.yaml)."""
    from docjobs.kube.crd import render_crds, render_template_crd

    typer.echo(render_template_crd() if template else render_crds(), nl=False)


@app.command()
def operator(
    namespace: Annotated[
        str | None,
        typer.Option(help="Namespace to watch (default: all; env DOCJOBS_OPERATOR__NAMESPACE)."),
    ] = None,
    liveness_port: Annotated[
        int, typer.Option(help="Port of /healthz for the liveness probe (0: off).")
    ] = 8080,
    metrics_port: Annotated[int, typer.Option(help="Port of Prometheus /metrics (0: off).")] = 9090,
) -> None:
    """Run the Kubernetes operator: DocumentJobs become runner Jobs. The cluster comes from
    KUBECONFIG or the pod's service account; S3 from DOCJOBS_S3__* variables."""
    from docjobs.operator.main import run

    run(namespace, liveness_port or None, metrics_port or None)
