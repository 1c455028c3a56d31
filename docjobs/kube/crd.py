"""The DocumentJob CustomResourceDefinition, generated from the pydantic models.

``crds/documentjob.yaml`` is :func:`render_crds`'s output (``docjobs crd > crds/...``); a
test keeps it current. The models' JSON schemas (2020-12) are turned into the *structural*
OpenAPI v3 subset the API server accepts: references inlined, ``anyOf [X, null]`` as X with
``nullable``, the discriminated ``operation`` union merged into one object (structural
schemas cannot hold differing ``oneOf`` branches; CEL rules keep each kind's own fields),
free-form dicts as ``x-kubernetes-preserve-unknown-fields``. Defaults stay out of the CRD:
the models apply them on read, so the API server never adds fields the API did not write.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import textwrap
from functools import cache
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

from docjobs.kube.resources import (
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    TEMPLATE_KIND,
    TEMPLATE_PLURAL,
    TEMPLATE_SHORT_NAMES,
    TEMPLATE_SINGULAR,
    VERSION,
    DocumentJobSpec,
    DocumentJobStatus,
    DocumentTemplateSpec,
)

Schema = dict[str, Any]

_DROPPED = ("title", "default", "discriminator", "$defs", "examples")
"""JSON-schema keys with no structural counterpart (or, for defaults, deliberately left out)."""

IMMUTABLE_SPEC_FIELDS = ("jobId", "tenant", "operation", "input", "createdAt")
"""A job's definition never changes once submitted; only ``cancel`` may be set later."""


def documentjob_crd() -> dict[str, Any]:
    spec = structural(DocumentJobSpec, "validation")
    for name in IMMUTABLE_SPEC_FIELDS:
        _add_rule(spec["properties"][name], "self == oldSelf", f"{name} is immutable")
    _add_rule(spec["properties"]["cancel"], "self || !oldSelf", "cancel cannot be withdrawn")
    # The same checks as DocumentJobSpec's validator, at admission: a hand-written job never
    # reaches the operator with another folder's input or a name that is not its id's.
    _add_rule(
        spec,
        "self.input.key.startsWith(self.tenant + '/' + self.jobId + '/')",
        "input.key must lie in the job's own folder <tenant>/<jobId>/",
    )
    status = structural(DocumentJobStatus, "serialization")
    schema: Schema = {
        "type": "object",
        "description": "A document-processing job: one input object, one operation, "
        "run by the docjobs operator as one batch/v1 Job per attempt.",
        "properties": {"spec": spec, "status": status},
        "required": ["spec"],
    }
    _add_rule(
        schema,
        "self.metadata.name == self.spec.jobId.replace('_', '-')",
        "metadata.name must be spec.jobId with '-' for '_' (job_<hex> is named job-<hex>)",
    )
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


PRINTER_COLUMNS = [
    {"name": "Operation", "type": "string", "jsonPath": ".spec.operation.kind"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Progress", "type": "string", "jsonPath": ".status.progressText"},
    {"name": "Attempts", "type": "integer", "jsonPath": ".status.attempts"},
    {"name": "Pages", "type": "integer", "jsonPath": ".status.pageCount"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Duration", "type": "string", "jsonPath": ".status.duration"},
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 0},
]


def documenttemplate_crd() -> dict[str, Any]:
    spec = structural(DocumentTemplateSpec, "validation")
    _add_rule(spec["properties"]["tenant"], "self == oldSelf", "tenant is immutable")
    schema: Schema = {
        "type": "object",
        "description": "An extraction template: the fields docjobs fills from a document. "
        "The resource's name is the template id used by /v1/documents/parse.",
        "properties": {"spec": spec},
        "required": ["spec"],
    }
    columns = [
        {"name": "Tenant", "type": "string", "jsonPath": ".spec.tenant"},
        {"name": "Template", "type": "string", "jsonPath": ".spec.name"},
        {"name": "Engine", "type": "string", "jsonPath": ".spec.engine"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{TEMPLATE_PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": TEMPLATE_KIND,
                "listKind": f"{TEMPLATE_KIND}List",
                "plural": TEMPLATE_PLURAL,
                "singular": TEMPLATE_SINGULAR,
                "shortNames": list(TEMPLATE_SHORT_NAMES),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def render_template_crd() -> str:
    header = "# Generated by `docjobs crd --template` from docjobs/resources.py; do not edit.\n"
    body: str = yaml.safe_dump(
        documenttemplate_crd(), sort_keys=False, width=100, allow_unicode=True
    )
    return header + body


def render_crds() -> str:
    header = "# Generated by `docjobs crd` from docjobs/resources.py; do not edit.\n"
    body: str = yaml.safe_dump(documentjob_crd(), sort_keys=False, width=100, allow_unicode=True)
    return header + body


def _add_rule(schema: Schema, rule: str, message: str) -> None:
    schema.setdefault("x-kubernetes-validations", []).append({"rule": rule, "message": message})


# --- pydantic JSON schema -> structural OpenAPI v3 ---------------------------------------


def structural(model: type[BaseModel], mode: JsonSchemaMode) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode=mode, schema_generator=_WithDocstrings)
    return _convert(raw, raw.get("$defs", {}), ())


def _convert(node: Schema, defs: dict[str, Schema], stack: tuple[str, ...]) -> Schema:
    node = dict(node)
    if "$ref" in node:
        name = node.pop("$ref").rsplit("/", 1)[-1]
        siblings = _convert(node, defs, stack) if node else {}
        if name in stack:
            # Recursive models (template fields nest) cannot be structural: the nested level
            # is kept as is and validated by the models when the operator reads it.
            target: Schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        else:
            target = _convert(defs[name], defs, (*stack, name))
        return {**target, **siblings}
    if "anyOf" in node:
        branches = node.pop("anyOf")
        rest = [b for b in branches if b != {"type": "null"}]
        if len(rest) != 1 or len(branches) != 2:
            raise ValueError(f"only `X | None` unions can be structural, not {branches}")
        return {**_convert(rest[0], defs, stack), **_convert(node, defs, stack), "nullable": True}
    if "oneOf" in node:
        branches = [_convert(b, defs, stack) for b in node.pop("oneOf")]
        return {**_merge_union(branches), **_convert(node, defs, stack)}
    out: Schema = {k: node[k] for k in ("type", "description") if k in node}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "exclusiveMinimum":  # a number in 2020-12, a flag on minimum in OpenAPI 3.0
            out.update(minimum=value, exclusiveMinimum=True)
        elif key == "exclusiveMaximum":
            out.update(maximum=value, exclusiveMaximum=True)
        elif key == "properties":
            out[key] = {name: _convert(sub, defs, stack) for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs, stack)
        elif key == "additionalProperties":
            if value is True:  # dict[str, Any]
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out[key] = _convert(value, defs, stack)
            # False: pruning drops unknown fields anyway, and it may not sit beside properties.
        else:
            out[key] = value
    return out


def _merge_union(branches: list[Schema]) -> Schema:
    """One object for a union discriminated by ``kind``: every branch's properties, ``kind``
    an enum, and a CEL rule per kind for the fields that kind needs and allows."""
    properties: Schema = {}
    kinds: list[str] = []
    own: dict[str, tuple[set[str], list[str]]] = {}
    for branch in branches:
        props = branch["properties"]
        (kind,) = props["kind"]["enum"]
        kinds.append(kind)
        fields = [name for name in props if name != "kind"]
        own[kind] = (set(fields), [n for n in branch.get("required", []) if n != "kind"])
        for name in fields:
            known = properties.setdefault(name, props[name])
            if _bare(known) != _bare(props[name]):
                raise ValueError(f"operation field {name!r} differs between kinds")
    rules = []
    for kind in kinds:
        allowed, required = own[kind]
        others = [name for name in properties if name not in allowed]
        checks = [f"has(self.{n})" for n in required] + [f"!has(self.{n})" for n in others]
        if not checks:
            continue
        needs = f"requires {', '.join(required)}" if required else "requires nothing more"
        takes = ", ".join(n for n in properties if n in allowed) or "no other fields"
        rules.append(
            {
                "rule": f"self.kind != '{kind}' || ({' && '.join(checks)})",
                "message": f"operation {kind!r} {needs}; it takes {takes}",
            }
        )
    return {
        "type": "object",
        "description": "What to do with the input; `kind` selects the operation.",
        "properties": {
            "kind": {"type": "string", "enum": kinds, "description": "The operation."},
            **properties,
        },
        "required": ["kind"],
        "x-kubernetes-validations": rules,
    }


def _bare(schema: Schema) -> Schema:
    return {k: v for k, v in schema.items() if k != "description"}


class _WithDocstrings(GenerateJsonSchema):
    """Field docstrings (the ``\"\"\"...\"\"\"`` under a field) become descriptions, so
    ``kubectl explain documentjob.spec`` shows what the models' authors wrote."""

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        json_schema = super().model_schema(schema)
        model = schema["cls"]
        properties = json_schema.get("properties", {})
        if issubclass(model, BaseModel):
            docs = _attribute_docstrings(model)
            for name, info in model.model_fields.items():
                key = info.serialization_alias or info.alias or name
                if key in properties and name in docs:
                    properties[key].setdefault("description", docs[name])
        return json_schema


@cache
def _attribute_docstrings(model: type[BaseModel]) -> dict[str, str]:
    docs: dict[str, str] = {}
    for klass in reversed(model.__mro__):  # subclasses override their bases
        if not issubclass(klass, BaseModel) or klass is BaseModel:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for field, after in itertools.pairwise(body):
            if (
                isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[field.target.id] = " ".join(after.value.value.split())
    return docs
