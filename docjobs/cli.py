"""``docjobs``, the command line: each subcommand imports only what it runs (every runner
start loads this module) and takes its backend and stores from :mod:`docjobs.bootstrap`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from docjobs import cli_client
from docjobs.config import Settings, get_settings

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    # Markdown joins a docstring's wrapped lines into paragraphs, as a terminal should show them.
    rich_markup_mode="markdown",
    help="docjobs: document conversion, OCR and template parsing as jobs.\n\n"
    "`serve` runs the service (embedded mode by default); `submit`, `jobs`, `templates` and"
    " `webhooks` talk to a running server (`--url`, `--key` or DOCJOBS_URL, DOCJOBS_API_KEY);"
    " `keys` manages API keys, `usage` reports every tenant's usage, `models` docTR's weights.",
)
keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys.")
app.add_typer(keys_app, name="keys")
models_app = typer.Typer(no_args_is_help=True, help="Manage model weight files (docTR).")
app.add_typer(models_app, name="models")
app.command()(cli_client.submit)
app.add_typer(cli_client.jobs_app, name="jobs")
app.add_typer(cli_client.templates_app, name="templates")
app.add_typer(cli_client.webhooks_app, name="webhooks")
app.add_typer(cli_client.batch_app, name="batch")

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

    from docjobs.api.app import create_app
    from docjobs.api.server import serve as serve_app
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
    from docjobs.capabilities import CapabilityCache, banner

    typer.echo("\n".join(banner(CapabilityCache(settings).refresh())))
    typer.echo(
        f"docjobs on http://{host}:{port}  (console: http://{host}:{port}/console,"
        f" API docs: http://{host}:{port}/docs)"
    )
    serve_app(create_app(settings, backend), host, port, settings.server)


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


@app.command("usage")
def usage_report(
    from_day: Annotated[
        datetime | None,
        typer.Option("--from", formats=["%Y-%m-%d"], help="First day (UTC) [this month's first]."),
    ] = None,
    to_day: Annotated[
        datetime | None,
        typer.Option("--to", formats=["%Y-%m-%d"], help="Last day (UTC), included [today]."),
    ] = None,
    data_dir: DataDir = None,
    backend: BackendOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Every tenant's usage as CSV on stdout: jobs, pages, input bytes and runner CPU seconds
    by tenant, day, operation, tier and final status, of the jobs that ended from --from to
    --to. Read from the data directory (embedded) or the object store (kubernetes: the
    records the operator writes, DOCJOBS_S3__* variables)."""
    from docjobs.bootstrap import create_usage_reader
    from docjobs.usage.totals import usage_csv

    last = to_day.date() if to_day else datetime.now(UTC).date()
    first = from_day.date() if from_day else last.replace(day=1)
    if first > last:
        typer.echo(f"error: --from {first} is after --to {last}", err=True)
        raise typer.Exit(2)
    settings = _mode_settings(data_dir, backend, namespace)
    with _kube_errors(settings):
        text = usage_csv(create_usage_reader(settings).records(None, first, last))
    typer.echo(text, nl=False)


@models_app.command("fetch")
def models_fetch(
    url: Annotated[
        str | None,
        typer.Option(help="A mirror's weights file (http or https); needs --sha256."),
    ] = None,
    sha256: Annotated[
        str | None,
        typer.Option(help="The --url file's SHA-256; nothing is kept without it."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="File name in the directory, e.g. db_resnet50.pt [the URL's last part]."),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            help="Without --url: a mirror holding docTR's release files under their own names "
            "[docTR's published URLs]."
        ),
    ] = None,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Weights directory [env DOCJOBS_DOCTR__WEIGHTS_DIR; the data directory's models].",
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Download docTR's weights into the weights directory, checking their SHA-256.

    Without --url: the two files advanced OCR's architectures need
    (DOCJOBS_DOCTR__DETECTION_ARCH, DOCJOBS_DOCTR__RECOGNITION_ARCH; db_resnet50 and
    crnn_vgg16_bn by default) from docTR's published URLs, each checked against the SHA-256
    digits its release name carries. With --url and --sha256: one file, e.g. from a mirror.
    Runners never download weights themselves."""
    from docjobs.runner.weights import PUBLISHED, WeightsError, fetch, fetch_published

    settings = _settings(data_dir=data_dir)
    target_dir = directory or settings.doctr.weights_directory(settings.data_dir)
    if url is None and sha256 is not None:
        typer.echo("error: --sha256 checks a --url; give both, or neither", err=True)
        raise typer.Exit(2)
    if url is not None and sha256 is None:
        typer.echo("error: --url needs --sha256 (the file's SHA-256)", err=True)
        raise typer.Exit(2)
    archs = (settings.doctr.detection_arch, settings.doctr.recognition_arch)
    unknown = [arch for arch in archs if arch not in PUBLISHED]
    if url is None and unknown:
        typer.echo(
            f"error: no published weights known for {', '.join(unknown)}; fetch them with "
            f"--url URL --sha256 HASH --name ARCH.pt (known: {', '.join(PUBLISHED)})",
            err=True,
        )
        raise typer.Exit(2)
    try:
        if url is not None and sha256 is not None:
            paths = [fetch(url, sha256, target_dir, name)]
        else:
            paths = [fetch_published(PUBLISHED[arch], target_dir, base_url or "") for arch in archs]
    except (WeightsError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for path in paths:
        typer.echo(f"{path}")
    if target_dir.resolve() != settings.doctr.weights_directory(settings.data_dir).resolve():
        typer.echo(f"Point the server at them: DOCJOBS_DOCTR__WEIGHTS_DIR={directory}", err=True)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def runner(
    worker: Annotated[bool, typer.Option("--worker", help="Serve jobs from stdin.")] = False,
) -> None:
    """Run one attempt (its manifest's URL in the file DOCJOBS_RUNNER__MANIFEST_FILE) by the
    runner contract, or serve as a warm worker."""
    from docjobs.runner.main import main

    sys.exit(main(["--worker"] if worker else []))


@app.command("workers")
def claiming_workers(
    namespace: NamespaceOpt = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port of /healthz, /readyz, /metrics [env DOCJOBS_WORKERS__PORT; 8080]."),
    ] = None,
) -> None:
    """Run warm workers that claim small DocumentJobs (Kubernetes mode): a one-page document
    then costs no runner pod. DocumentJobs in NAMESPACE; files in S3 (DOCJOBS_S3__* variables);
    warm processes: DOCJOBS_WORKERS__CONCURRENCY."""
    import asyncio
    import logging

    from docjobs.bootstrap import create_claiming_workers

    settings = _mode_settings(None, BackendName.KUBERNETES, namespace)
    if port is not None:
        settings = settings.model_copy(
            update={"workers": settings.workers.model_copy(update={"port": port})}
        )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with _kube_errors(settings):
        workers = create_claiming_workers(settings)
        asyncio.run(workers.serve())


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
