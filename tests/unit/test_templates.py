"""Templates: validation of what clients post, the result's shape, the schema given to the
model, the checking of its answer, and the typed value readers behind them."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from pydantic import ValidationError

from docjobs.domain.idempotency import fingerprint
from docjobs.domain.models import Extract, JobSpec
from docjobs.templates.schema import (
    TemplateField,
    TemplateSpec,
    json_schema_of,
    shape_result,
    validate_result,
    value_at,
)
from docjobs.templates.store import content_version
from docjobs.templates.values import find_amount, find_boolean, find_date

INVOICE = {
    "name": "invoice",
    "engine": "rules",
    "fields": [
        {"name": "invoice.number", "type": "string", "description": "Invoice number"},
        {"name": "invoice.date", "type": "date"},
        {"name": "invoice.total", "type": "currency", "labels": ["Amount Due"]},
        {"name": "invoice.vendor", "type": "string"},
        {"name": "paid", "type": "boolean"},
        {
            "name": "items",
            "type": "list",
            "items": [
                {"name": "description"},
                {"name": "quantity", "type": "integer"},
                {"name": "price.unit", "type": "currency"},
            ],
        },
    ],
}


def spec(fields: list[dict[str, object]]) -> TemplateSpec:
    return TemplateSpec.model_validate({"name": "t", "fields": fields})


def test_the_api_json_is_a_valid_template() -> None:
    template = TemplateSpec.model_validate(INVOICE)
    assert template.engine == "rules"
    assert template.fields[2].labels == ["Amount Due"]
    assert [item.name for item in template.fields[5].items] == [
        "description",
        "quantity",
        "price.unit",
    ]
    assert TemplateSpec.model_validate({"name": "x", "fields": [{"name": "a"}]}).engine is None


@pytest.mark.parametrize(
    "name", ["", "invoice.", ".number", "invoice..number", "1st", "in voice", "total-due", "a.b-c"]
)
def test_field_names_must_be_dotted_identifiers(name: str) -> None:
    with pytest.raises(ValidationError, match=r"dotted name|at least 1 character"):
        TemplateField(name=name)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([{"name": "a"}, {"name": "a"}], "appears twice"),
        ([{"name": "invoice"}, {"name": "invoice.number"}], "conflict"),
        ([{"name": "invoice.number.x"}, {"name": "invoice.number"}], "conflict"),
        ([{"name": "a", "regex": "(unclosed"}], "does not compile"),
        ([{"name": "a", "regex": "(a)(b)"}], "at most one capture group"),
        ([{"name": "a", "regex": "x" * 501}], "at most 500 characters"),
        ([{"name": "a", "type": "list"}], "needs items"),
        ([{"name": "a", "items": [{"name": "b"}]}], "only list fields have items"),
        (
            [{"name": "a", "type": "list", "items": [{"name": "b", "type": "list"}]}],
            "cannot be nested|needs items",
        ),
        ([{"name": "a", "type": "list", "items": [{"name": "b"}, {"name": "b"}]}], "twice"),
        ([{"name": "a", "type": "money"}], "Input should be"),
        ([{"name": "a", "label": ["x"]}], "Extra inputs are not permitted"),
        ([{"name": "a", "labels": [""]}], "1 to 100 characters"),
        ([], "at least 1 item"),
        ([{"name": f"f{n}"} for n in range(101)], "at most 100 items"),
    ],
)
def test_invalid_templates_are_refused_with_a_reason(
    fields: list[dict[str, object]], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(fields)


def test_template_name_and_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        TemplateSpec.model_validate({"name": "", "fields": [{"name": "a"}]})
    with pytest.raises(ValidationError):
        TemplateSpec.model_validate({"name": "x" * 101, "fields": [{"name": "a"}]})
    with pytest.raises(ValidationError, match="Extra inputs"):
        TemplateSpec.model_validate({"name": "x", "fields": [{"name": "a"}], "owner": "me"})


def test_a_regex_with_one_group_or_none_is_accepted() -> None:
    assert spec([{"name": "a", "regex": r"INV-(\d+)"}]).fields[0].regex == r"INV-(\d+)"
    assert spec([{"name": "a", "regex": r"INV-(?:\d+)"}]).fields[0].regex


def test_shape_result_nests_dotted_names_and_fills_missing_with_null() -> None:
    template = TemplateSpec.model_validate(INVOICE)
    values = {
        "invoice.number": "INV-2025-001",
        "invoice.total": 1250.75,
        "items": [{"description": "Consulting", "quantity": 10, "price.unit": 100.0}],
    }
    assert shape_result(template.fields, values) == {
        "invoice": {"number": "INV-2025-001", "date": None, "total": 1250.75, "vendor": None},
        "paid": None,
        "items": [{"description": "Consulting", "quantity": 10, "price": {"unit": 100.0}}],
    }
    assert value_at(shape_result(template.fields, values), "invoice.total") == 1250.75
    assert value_at({"invoice": None}, "invoice.total") is None


def test_json_schema_requires_every_key_and_allows_null() -> None:
    schema = json_schema_of(TemplateSpec.model_validate(INVOICE))
    assert schema["type"] == "object"
    assert schema["required"] == ["invoice", "paid", "items"]
    assert schema["additionalProperties"] is False
    invoice = schema["properties"]["invoice"]
    assert invoice["required"] == ["number", "date", "total", "vendor"]
    assert invoice["properties"]["number"] == {
        "type": ["string", "null"],
        "description": "Invoice number",
    }
    assert invoice["properties"]["date"]["type"] == ["string", "null"]
    assert invoice["properties"]["date"]["format"] == "date"
    assert "YYYY-MM-DD" in invoice["properties"]["date"]["description"]
    assert invoice["properties"]["total"]["type"] == ["number", "null"]
    assert schema["properties"]["paid"]["type"] == ["boolean", "null"]
    items = schema["properties"]["items"]
    assert items["type"] == ["array", "null"]
    assert items["items"]["type"] == "object"
    assert items["items"]["required"] == ["description", "quantity", "price"]
    assert items["items"]["properties"]["quantity"]["type"] == ["integer", "null"]
    assert items["items"]["properties"]["price"]["properties"]["unit"]["type"] == [
        "number",
        "null",
    ]


def test_validate_result_coerces_dates_and_numbers() -> None:
    template = TemplateSpec.model_validate(INVOICE)
    answer = {
        "invoice": {
            "number": 1001,
            "date": "2025-05-26T00:00:00Z",
            "total": "$1,250.75",
            "unexpected": "dropped",
        },
        "paid": "yes",
        "items": [{"description": "Consulting", "quantity": 10.0, "price": {"unit": "100"}}],
    }
    assert validate_result(template, answer) == {
        "invoice": {"number": "1001", "date": "2025-05-26", "total": 1250.75, "vendor": None},
        "paid": True,
        "items": [{"description": "Consulting", "quantity": 10, "price": {"unit": 100.0}}],
    }
    assert validate_result(template, {"invoice": {"date": "26 May 2025"}})["invoice"]["date"] == (
        "2025-05-26"
    )
    assert validate_result(template, {"invoice": None, "items": None}) == {
        "invoice": {"number": None, "date": None, "total": None, "vendor": None},
        "paid": None,
        "items": None,
    }


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ([], "must be an object"),
        ({"invoice": "INV-1"}, "invoice: expected an object"),
        ({"invoice": {"total": "lots"}}, "invoice.total: expected a number, got 'lots'"),
        ({"invoice": {"total": True}}, "invoice.total: expected a number"),
        ({"invoice": {"date": "soon"}}, "invoice.date: expected a date"),
        ({"invoice": {"date": "2025-02-30"}}, "invoice.date: expected a date"),
        ({"invoice": {"number": {"a": 1}}}, "invoice.number: expected a string"),
        ({"paid": "perhaps"}, "paid: expected true or false"),
        ({"items": {"description": "x"}}, "items: expected a list"),
        ({"items": ["x"]}, r"items\[0\]: expected an object"),
        ({"items": [{}, {"quantity": 1.5}]}, r"items\[1\].quantity: expected a whole number"),
        ({"items": [{"price": 3}]}, r"items\[0\].price: expected an object"),
    ],
)
def test_validate_result_names_the_malformed_field(answer: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_result(TemplateSpec.model_validate(INVOICE), answer)


def test_a_stored_job_names_its_template_by_id_and_version_only() -> None:
    # A job stored before template versions carries its template: it still reads, and
    # what is stored of it from now on is the template's id and content version.
    job = JobSpec.model_validate(
        {
            "job_id": "j1",
            "tenant": "t",
            "operation": {"kind": "extract", "template_id": "tpl-1", "template": INVOICE},
            "input": {
                "key": "k",
                "file_name": "a.pdf",
                "content_type": "x",
                "sha256": "0",
                "size": 1,
            },
            "created_at": "2026-01-27T10:30:00Z",
        }
    )
    assert isinstance(job.operation, Extract)
    assert job.operation.engine == "rules"
    assert job.operation.template is not None
    assert job.operation.template.fields[0].name == "invoice.number"
    version = content_version(TemplateSpec.model_validate(INVOICE))
    assert job.operation.template_version == version
    stored = json.loads(job.model_dump_json())["operation"]
    assert stored == {
        "kind": "extract",
        "template_id": "tpl-1",
        "template_version": version,
        "engine": "rules",
        "language": "eng",
        "ocr": "simple",
    }
    read_back = JobSpec.model_validate_json(job.model_dump_json())
    assert read_back.operation == job.operation.model_copy(update={"template": None})


def test_a_changed_template_is_another_version_and_another_job() -> None:
    spec = TemplateSpec.model_validate(INVOICE)
    same = TemplateSpec.model_validate_json(json.dumps(INVOICE, sort_keys=True))
    renamed = TemplateSpec.model_validate({**INVOICE, "name": "invoice-v2"})
    assert content_version(same) == content_version(spec) != content_version(renamed)

    def submission(template: TemplateSpec) -> str:
        operation = Extract(
            template_id="tpl-1", template_version=content_version(template), template=template
        )
        return fingerprint("acme", operation, "sha")

    assert submission(same) == submission(spec) != submission(renamed)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("26/05/2025", date(2025, 5, 26)),
        ("05/26/2025", date(2025, 5, 26)),
        ("2025-05-26", date(2025, 5, 26)),
        ("26.05.2025", date(2025, 5, 26)),
        ("May 26, 2025", date(2025, 5, 26)),
        ("26 May 2025", date(2025, 5, 26)),
        ("26th of", None),
        ("Sept. 3rd 2024", date(2024, 9, 3)),
        ("26-May-25", date(2025, 5, 26)),
        ("03/04/2025", date(2025, 4, 3)),  # ambiguous: day first
        ("31/02/2025", None),
        ("INV-2025-001", None),
    ],
)
def test_dates(text: str, expected: date | None) -> None:
    found = find_date(text)
    assert (found.value if found else None) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,250.75", Decimal("1250.75")),
        ("$1,250.75", Decimal("1250.75")),
        ("1.250,75", Decimal("1250.75")),
        ("EUR 1.250,75", Decimal("1250.75")),
        ("1 250,75 €", Decimal("1250.75")),
        ("12,5", Decimal("12.5")),
        ("1,250", Decimal("1250")),
        ("-$5.00", Decimal("-5.00")),
        ("INV-2025-001", None),
        ("26/05/2025", None),
        ("lots", None),
    ],
)
def test_amounts(text: str, expected: Decimal | None) -> None:
    found = find_amount(text)
    assert (found.value if found else None) == expected


def test_booleans() -> None:
    assert [find_boolean(t).value for t in ("Yes", "x", "TRUE.", "no", "false")] == [  # type: ignore[union-attr]
        True,
        True,
        True,
        False,
        False,
    ]
    assert find_boolean("maybe") is None
