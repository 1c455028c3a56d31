"""``docjobs templates apply|list|get|delete``: the tenant's parse templates."""

from __future__ import annotations

import json
from contextlib import suppress
from pathlib import Path
from typing import Annotated, Any

import typer

from .connection import DEFAULT_URL, KeyOpt, UrlOpt, client_of, fail, table

templates_app = typer.Typer(no_args_is_help=True, help="Manage a server's parse templates.")


TEMPLATE_KIND = "DocumentTemplate"


def _read_spec(path: Path) -> tuple[dict[str, Any], str | None]:
    """The template in ``path``, and the id a DocumentTemplate resource names (its
    ``metadata.name``, the ``templateId`` clients send); a plain template names none."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        spec = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise fail(f"{path}: {exc}", 2) from None
    named: str | None = None
    if isinstance(spec, dict) and spec.get("kind") == TEMPLATE_KIND:
        metadata = spec.get("metadata")
        named = metadata.get("name") if isinstance(metadata, dict) else None
        spec = spec.get("spec")
        if isinstance(spec, dict):
            # Whose template it is follows from the key, not from the file.
            spec = {k: v for k, v in spec.items() if k != "tenant"}
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise fail(
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
    with client_of(url, key) as client:
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
    with client_of(url, key) as client:
        templates = client.templates.list()
    rows = [(t.template_id, t.name, str(len(t.fields)), t.updated_at) for t in templates]
    table(("ID", "NAME", "FIELDS", "UPDATED"), rows)


@templates_app.command("get")
def templates_get(template_id: str, key: KeyOpt, url: UrlOpt = DEFAULT_URL) -> None:
    """Print a template as JSON."""
    with client_of(url, key) as client:
        template = client.templates.get(template_id)
    typer.echo(template.model_dump_json(indent=2, by_alias=True))


@templates_app.command("delete")
def templates_delete(template_id: str, key: KeyOpt, url: UrlOpt = DEFAULT_URL) -> None:
    """Delete a template; jobs that ran with it keep their results."""
    with client_of(url, key) as client:
        client.templates.delete(template_id)
    typer.echo(f"Deleted {template_id}")
