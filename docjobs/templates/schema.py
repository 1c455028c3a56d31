"""Extraction templates: which fields to read from a document, and the shape of the answer.

A field's ``name`` is a dotted path (``invoice.number``) that places its value in the
nested result (``{"invoice": {"number": ...}}``). Hints (``labels``, ``regex``) steer the
rules engine; ``description`` helps both engines. A ``list`` field holds rows whose
columns are its ``items``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

import regex as regex_engine
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from docjobs.templates import values as template_values
from docjobs.templates.patterns import PatternTooComplex, check_expansion

FieldType = Literal["string", "number", "integer", "date", "currency", "boolean", "list"]
Extractor = Literal["rules", "llm"]
OcrTier = Literal["simple", "advanced", "vision", "auto"]
"""How pages without a text layer are read: Tesseract, docTR or a vision language model, or
``auto``: Tesseract, and the stronger tiers for the pages it reads badly."""

MAX_FIELDS = 100
MAX_ITEMS = 50
MAX_REGEX_LENGTH = 500
"""Characters; long enough for any sensible value pattern, short enough to review."""
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DATE_HINT = "ISO 8601 date, YYYY-MM-DD"
_JSON_TYPES: dict[str, str] = {
    "string": "string",
    "number": "number",
    "integer": "integer",
    "date": "string",
    "currency": "number",
    "boolean": "boolean",
}


class TemplateField(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    """Dotted path such as ``invoice.number``; each segment an identifier."""
    type: FieldType = "string"
    description: str | None = Field(default=None, max_length=500)
    labels: list[str] = Field(default_factory=list, max_length=20)
    """Texts printed next to the value in documents, e.g. ``["Invoice No", "Invoice #"]``."""
    regex: str | None = Field(default=None, max_length=MAX_REGEX_LENGTH)
    """Pattern for the value; its one capture group, or the whole match, is the value."""
    items: list[TemplateField] = Field(default_factory=list, max_length=MAX_ITEMS)
    """Columns of each row of a ``list`` field."""

    @field_validator("name")
    @classmethod
    def _dotted_name(cls, name: str) -> str:
        for segment in name.split("."):
            if not _SEGMENT.fullmatch(segment):
                raise ValueError(
                    f"{name!r} is not a dotted name: each part must be letters, digits or "
                    "underscores, not starting with a digit (e.g. 'invoice.number')"
                )
        return name

    @field_validator("labels")
    @classmethod
    def _plain_labels(cls, labels: list[str]) -> list[str]:
        cleaned = [label.strip() for label in labels]
        if any(not label or len(label) > 100 for label in cleaned):
            raise ValueError("labels must be 1 to 100 characters")
        return cleaned

    @field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str | None) -> str | None:
        if regex is None:
            return None
        try:
            # Counted repeats multiply when nested: a 40-character pattern can compile to
            # gigabytes, so what it compiles to is bounded before it is compiled.
            check_expansion(regex)
        except PatternTooComplex as exc:
            raise PydanticCustomError("pattern_too_complex", str(exc)) from None
        try:
            # The rules engine runs patterns with the `regex` module, for its timeout.
            groups = regex_engine.compile(regex).groups
        except regex_engine.error as exc:
            raise ValueError(f"regex does not compile: {exc}") from None
        if groups > 1:
            raise ValueError(
                "regex may have at most one capture group (the value); use (?:...) for others"
            )
        return regex

    @model_validator(mode="after")
    def _items_only_on_lists(self) -> TemplateField:
        if self.type != "list":
            if self.items:
                raise ValueError(f"{self.name}: only list fields have items")
            return self
        if not self.items:
            raise ValueError(f"{self.name}: a list field needs items (the columns of a row)")
        if any(item.type == "list" for item in self.items):
            raise ValueError(f"{self.name}: lists cannot be nested")
        if self.regex is not None:
            raise ValueError(f"{self.name}: a list field cannot have a regex; give its items one")
        check_names(self.items)
        return self


class TemplateSpec(BaseModel):
    """What a client posts to create a template."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000)
    engine: Extractor | None = None
    """``None``: the service's default engine."""
    ocr: OcrTier = "simple"
    """The OCR tier that reads scanned pages; a parse request's ``ocr`` field overrides it."""
    fields: list[TemplateField] = Field(min_length=1, max_length=MAX_FIELDS)

    @model_validator(mode="after")
    def _distinct_names(self) -> TemplateSpec:
        check_names(self.fields)
        return self


def check_names(fields: Sequence[TemplateField]) -> None:
    """Refuse repeated names and names that would sit inside another field's value."""
    names = [field.name for field in fields]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"field {name!r} appears twice")
        seen.add(name)
    for name in names:
        parts = name.split(".")
        for depth in range(1, len(parts)):
            prefix = ".".join(parts[:depth])
            if prefix in seen:
                raise ValueError(
                    f"fields {prefix!r} and {name!r} conflict: {prefix!r} would have to be "
                    "both a value and an object"
                )


def shape_result(fields: Sequence[TemplateField], values: Mapping[str, object]) -> dict[str, Any]:
    """The nested answer for ``values`` keyed by dotted name; absent fields are ``None``.

    A list field's value is a sequence of mappings keyed by its items' dotted names.
    """
    result: dict[str, Any] = {}
    for field in fields:
        value = values.get(field.name)
        if field.type == "list" and isinstance(value, Sequence) and not isinstance(value, str):
            value = [shape_result(field.items, row) for row in value if isinstance(row, Mapping)]
        *parents, leaf = field.name.split(".")
        node = result
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return result


def value_at(result: Mapping[str, Any], name: str) -> object:
    """The value at dotted ``name`` in a shaped result; ``None`` where the path breaks."""
    node: object = result
    for part in name.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def json_schema_of(spec: TemplateSpec) -> dict[str, Any]:
    """JSON schema of a shaped result, for a language model's tool input.

    Every key is required and every value nullable, so the model says ``null`` for a
    field it cannot find instead of leaving it out or guessing.
    """
    schema = _object_schema(spec.fields)
    schema["type"] = "object"  # the tool input itself is never null
    return schema


def _object_schema(fields: Sequence[TemplateField]) -> dict[str, Any]:
    root = _empty_object()
    for field in fields:
        *parents, leaf = field.name.split(".")
        node = root
        for parent in parents:
            if parent not in node["properties"]:
                node["properties"][parent] = _empty_object()
                node["required"].append(parent)
            node = node["properties"][parent]
        node["properties"][leaf] = _field_schema(field)
        node["required"].append(leaf)
    return root


def _empty_object() -> dict[str, Any]:
    return {
        "type": ["object", "null"],
        "properties": {},
        "required": [],
        "additionalProperties": False,
    }


def _field_schema(field: TemplateField) -> dict[str, Any]:
    schema: dict[str, Any]
    if field.type == "list":
        schema = {"type": ["array", "null"], "items": _object_schema(field.items)}
        schema["items"]["type"] = "object"
    else:
        schema = {"type": [_JSON_TYPES[field.type], "null"]}
    notes = [field.description] if field.description else []
    if field.type == "date":
        schema["format"] = "date"
        notes.append(_DATE_HINT)
    elif field.type == "currency":
        notes.append("amount as a plain number, without currency symbol or thousands separators")
    if notes:
        schema["description"] = "; ".join(notes)
    return schema


def validate_result(spec: TemplateSpec, data: object) -> dict[str, Any]:
    """Check a model's answer against ``spec`` and return it shaped and coerced.

    Dates become ``YYYY-MM-DD`` strings, amounts written as strings become numbers.
    Missing keys count as ``null`` and unknown keys are dropped; a value of the wrong type
    raises :class:`ValueError` naming the field.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"the answer must be an object, not {_kind(data)}")
    return shape_result(spec.fields, _flat_values(spec.fields, data, ""))


def _flat_values(
    fields: Sequence[TemplateField], data: Mapping[str, Any], where: str
) -> dict[str, object]:
    values: dict[str, object] = {}
    for field in fields:
        path = f"{where}{field.name}"
        values[field.name] = _coerce(field, _lookup(data, field.name, where), path)
    return values


def _lookup(data: Mapping[str, Any], name: str, where: str) -> object:
    node: object = data
    walked = where
    for part in name.split("."):
        if node is None:
            return None
        if not isinstance(node, Mapping):
            raise ValueError(f"{walked.rstrip('.')}: expected an object, got {_kind(node)}")
        node = node.get(part)
        walked += part + "."
    return node


def _coerce(field: TemplateField, value: object, path: str) -> object:
    if value is None:
        return None
    kind = field.type
    if kind == "list":
        if not isinstance(value, list):
            raise ValueError(f"{path}: expected a list, got {_kind(value)}")
        rows = []
        for index, row in enumerate(value):
            if not isinstance(row, Mapping):
                raise ValueError(f"{path}[{index}]: expected an object, got {_kind(row)}")
            rows.append(_flat_values(field.items, row, f"{path}[{index}]."))
        return rows
    if kind == "string":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"{path}: expected a string, got {_kind(value)}")
        return str(value)
    if kind == "boolean":
        return _coerce_boolean(value, path)
    if kind == "date":
        return _coerce_date(value, path)
    return _coerce_number(kind, value, path)


def _coerce_boolean(value: object, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        found = template_values.find_boolean(value)
        if found is not None and found.end == len(value.rstrip()):
            return found.value
    raise ValueError(f"{path}: expected true or false, got {value!r}")


def _coerce_date(value: object, path: str) -> str:
    if isinstance(value, str):
        text = value.strip()
        try:
            # Models sometimes answer a timestamp; its date part is what the field means.
            return datetime.fromisoformat(text).date().isoformat()
        except ValueError:
            pass
        found = template_values.find_date(text)
        if found is not None and found.start == 0 and found.end == len(text):
            return found.value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise ValueError(f"{path}: expected a date (YYYY-MM-DD), got {value!r}")


def _coerce_number(kind: str, value: object, path: str) -> int | float:
    number: Decimal | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = Decimal(str(value))
    elif isinstance(value, str):
        text = value.strip()
        found = template_values.find_amount(text)
        if found is not None and found.start == 0 and found.end == len(text):
            number = found.value
    if number is None or not number.is_finite():
        raise ValueError(f"{path}: expected a number, got {value!r}")
    if kind == "integer":
        whole = template_values.integer_value(number)
        if whole is None:
            raise ValueError(f"{path}: expected a whole number, got {value!r}")
        return whole
    if kind == "currency":
        return float(number)
    return template_values.number_value(number)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
