"""The extract engine on real documents: WeasyPrint renders an invoice, pypdfium2 reads its
text layer or rasterises it into a scan, and Tesseract reads the scans.

The ``llm`` engine talks to :class:`ClaudeStandIn`, a real HTTP server on 127.0.0.1 that
stands in for Claude: it speaks the Anthropic Messages API (``POST /v1/messages``),
records each request and plays back the answers a test queues.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
import weasyprint
from PIL import Image

from docjobs.config import LlmSettings, get_settings
from docjobs.domain.models import Extract
from docjobs.runner import engines
from docjobs.runner.engines import PermanentError, extract_llm, extract_rules, extract_text
from docjobs.runner.engines.extract_text import Box, DocumentText, Page
from docjobs.templates.schema import TemplateSpec

INVOICE_HTML = """<html><head><style>
@page { size: A4; margin: 2cm; }
body { font-family: 'DejaVu Sans', sans-serif; font-size: 11pt; }
h1 { font-size: 20pt; margin: 0 0 4mm 0; }
table { border-collapse: collapse; }
table.meta td { padding: 0.5mm 12mm 0.5mm 0; }
table.items { width: 100%; margin-top: 8mm; }
table.items th, table.items td { padding: 2mm; text-align: left; }
table.items .num { text-align: right; }
.totals { margin-top: 6mm; text-align: right; }
</style></head><body>
<h1>Acme Corporation</h1>
<p>12 Industrial Way<br>Springfield, IL 62704</p>
<h2>INVOICE</h2>
<table class="meta">
<tr><td>Invoice No:</td><td>INV-2025-001</td></tr>
<tr><td>Invoice Date:</td><td>26/05/2025</td></tr>
<tr><td>Due Date:</td><td>25/06/2025</td></tr>
</table>
<p>Bill To: Globex Ltd, 1 Main Street</p>
<table class="items">
<tr><th>Description</th><th class="num">Qty</th><th class="num">Unit Price</th>
<th class="num">Amount</th></tr>
<tr><td>Consulting services</td><td class="num">10</td><td class="num">$100.00</td>
<td class="num">$1,000.00</td></tr>
<tr><td>Software license</td><td class="num">1</td><td class="num">$150.75</td>
<td class="num">$150.75</td></tr>
</table>
<div class="totals"><p>Subtotal: $1,150.75<br>Tax: $100.00<br><b>Total: $1,250.75</b></p></div>
</body></html>"""

TEMPLATE = TemplateSpec.model_validate(
    {
        "name": "invoice",
        "fields": [
            {"name": "invoice.number", "type": "string", "description": "Invoice number"},
            {"name": "invoice.date", "type": "date"},
            {"name": "invoice.total", "type": "currency"},
            {"name": "invoice.vendor", "type": "string"},
            {
                "name": "items",
                "type": "list",
                "items": [
                    {"name": "description"},
                    {"name": "quantity", "type": "integer"},
                    {"name": "unit_price", "type": "currency"},
                    {"name": "amount", "type": "currency"},
                ],
            },
        ],
    }
)
EXPECTED = {
    "invoice": {
        "number": "INV-2025-001",
        "date": "2025-05-26",
        "total": 1250.75,
        "vendor": "Acme Corporation",
    },
    "items": [
        {
            "description": "Consulting services",
            "quantity": 10,
            "unit_price": 100.0,
            "amount": 1000.0,
        },
        {"description": "Software license", "quantity": 1, "unit_price": 150.75, "amount": 150.75},
    ],
}
API_KEY = "test-key-not-a-secret"


@dataclass
class Documents:
    pdf: Path
    png: Path
    scanned_pdf: Path


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Documents:
    folder = tmp_path_factory.mktemp("invoice")
    pdf = folder / "invoice.pdf"
    pdf.write_bytes(weasyprint.HTML(string=INVOICE_HTML).write_pdf())
    document = pdfium.PdfDocument(pdf)
    try:
        bitmap = document[0].render(scale=200 / 72)
        scan = bitmap.to_pil().convert("L")
    finally:
        document.close()
    png = folder / "invoice.png"
    scan.save(png)
    scanned_pdf = folder / "scanned.pdf"
    scan.save(scanned_pdf, "PDF", resolution=200.0)
    return Documents(pdf, png, scanned_pdf)


def run_rules(path: Path, content_type: str) -> tuple[dict[str, Any], engines.EngineOutput]:
    operation = Extract(template_id="tpl-1", template=TEMPLATE)
    output = engines.run(operation, path, content_type, workdir=path.parent)
    return json.loads(output.path.read_bytes()), output


def test_rules_engine_reads_the_text_layer(documents: Documents) -> None:
    result, output = run_rules(documents.pdf, "application/pdf")
    assert result == EXPECTED
    assert output.content_type == "application/json"
    assert output.extension == ".json"
    assert output.page_count == 1
    assert output.details == {
        "fields_found": 5,
        "fields_total": 5,
        "engine": "rules",
        "ocr": "simple",
    }


@pytest.mark.parametrize(
    ("name", "content_type"), [("png", "image/png"), ("scanned_pdf", "application/pdf")]
)
def test_rules_engine_reads_scans_through_ocr(
    documents: Documents, name: str, content_type: str
) -> None:
    result, output = run_rules(getattr(documents, name), content_type)
    assert result == EXPECTED
    assert output.page_count == 1


def test_the_text_layer_keeps_lines_and_cells(documents: Documents) -> None:
    document = extract_text.read(documents.pdf, "application/pdf", "eng")
    assert not document.pages[0].ocr
    header = next(line for line in document.lines if line.text.startswith("Description"))
    assert [cell.text for cell in header.cells] == ["Description", "Qty", "Unit Price", "Amount"]
    assert "Total: $1,250.75" in document.page_text(document.pages[0])


def test_unsupported_documents_fail_permanently(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("Invoice No: 1")
    with pytest.raises(PermanentError) as failure:
        run_rules(text, "text/plain")
    assert failure.value.reason == "UnsupportedMediaType"


# Layout rules, on lines built from boxes: each row is [(text, left), ...], 10 units high.


def document_of(*rows: list[tuple[str, float]]) -> DocumentText:
    boxes = [
        Box(text, left, 20.0 * number, left + 6.0 * len(text), 20.0 * number + 10)
        for number, row in enumerate(rows)
        for text, left in row
    ]
    return DocumentText((Page(1, extract_text.lines_of(boxes, 1), ocr=False),))


def rules(fields: list[dict[str, object]], document: DocumentText) -> dict[str, Any]:
    template = TemplateSpec.model_validate({"name": "t", "fields": fields})
    return extract_rules.extract_fields(template, document)


def test_values_under_a_header_row() -> None:
    document = document_of(
        [("Invoice Number", 0), ("Date", 200)],
        [("INV-7", 0), ("01/02/2025", 200)],
    )
    fields = [{"name": "invoice.number"}, {"name": "invoice.date", "type": "date"}]
    assert rules(fields, document) == {"invoice": {"number": "INV-7", "date": "2025-02-01"}}


def test_a_value_must_start_right_after_its_label() -> None:
    document = document_of(
        [("Total excl. VAT: 1,000.00", 0)],
        [("Total: EUR 1.200,00", 0)],
        [("Paid: yes", 0)],
        [("Due Date: 2025-07-01", 0)],
    )
    fields = [
        {"name": "total", "type": "currency"},
        {"name": "paid", "type": "boolean"},
        {"name": "date", "type": "date"},
    ]
    # "Date" is found inside "Due Date" only for want of a better label.
    assert rules(fields, document) == {"total": 1200.0, "paid": True, "date": "2025-07-01"}


def test_label_hints_and_regex_hints() -> None:
    document = document_of([("Ref. A-17", 0)], [("Order 4711 shipped", 0)])
    fields = [
        {"name": "reference", "labels": ["Ref."]},
        {"name": "order", "type": "integer", "regex": r"Order\s+(\d+)"},
        {"name": "missing", "regex": r"Nothing like this"},
    ]
    assert rules(fields, document) == {"reference": "A-17", "order": 4711, "missing": None}


def test_a_runaway_regex_fails_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract_rules, "REGEX_TIMEOUT_SECONDS", 1e-6)
    document = document_of(*[[("word " * 200, 0)] for _ in range(50)])
    with pytest.raises(PermanentError) as failure:
        rules([{"name": "a", "regex": r"(\w+\s?)+\d"}], document)
    assert failure.value.reason == "RegexTimeout"


def test_only_company_fields_fall_back_to_the_letterhead() -> None:
    document = document_of([("INVOICE", 0)], [("Initech LLC", 0)], [("Nothing else", 0)])
    fields = [{"name": "seller.company"}, {"name": "customer"}]
    assert rules(fields, document) == {"seller": {"company": "Initech LLC"}, "customer": None}


def test_tables_with_wrapped_text_end_at_the_totals() -> None:
    document = document_of(
        [("Item", 0), ("Qty", 300), ("Price", 400)],
        [("Widget, blue,", 0), ("2", 300), ("9.50", 400)],
        [("extra large", 0)],
        [("Gadget", 0), ("1", 300), ("20.00", 400)],
        [("Subtotal", 0), ("39.00", 400)],
        [("Spare part", 0), ("5", 300), ("1.00", 400)],
    )
    fields = [
        {
            "name": "lines",
            "type": "list",
            "items": [
                {"name": "description"},
                {"name": "quantity", "type": "integer"},
                {"name": "unit_price", "type": "currency"},
            ],
        },
        {"name": "absent", "type": "list", "items": [{"name": "sku"}, {"name": "weight"}]},
    ]
    assert rules(fields, document) == {
        "lines": [
            {"description": "Widget, blue, extra large", "quantity": 2, "unit_price": 9.5},
            {"description": "Gadget", "quantity": 1, "unit_price": 20.0},
        ],
        "absent": None,
    }


# The llm engine against the stand-in for Claude.


@dataclass
class ClaudeStandIn:
    """A local stand-in for Claude's Messages API: records requests, replays queued answers."""

    answers: list[tuple[int, object]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def answer_tool(self, fields: dict[str, Any], stop_reason: str = "tool_use") -> None:
        self.answer_content(
            [{"type": "tool_use", "id": "toolu_1", "name": "record_fields", "input": fields}],
            stop_reason,
        )

    def answer_content(self, content: list[dict[str, Any]], stop_reason: str) -> None:
        self.answers.append(
            (
                200,
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-sonnet-4-5",
                    "content": content,
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 100, "output_tokens": 50},
                },
            )
        )

    def answer_error(self, status: int, kind: str) -> None:
        self.answers.append((status, {"type": "error", "error": {"type": kind, "message": kind}}))


@pytest.fixture
def claude() -> Iterator[ClaudeStandIn]:
    stand_in = ClaudeStandIn()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            stand_in.requests.append({"path": self.path, "headers": self.headers, "body": body})
            status, answer = stand_in.answers.pop(0)
            data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    stand_in.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def text_document(documents: Documents) -> DocumentText:
    return extract_text.read(documents.pdf, "application/pdf", "eng")


def settings_for(claude: ClaudeStandIn) -> LlmSettings:
    return LlmSettings(base_url=claude.url, api_key=API_KEY, timeout_seconds=10)


def test_llm_engine_sends_the_schema_and_text_and_checks_the_answer(
    claude: ClaudeStandIn, documents: Documents, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCJOBS_LLM__BASE_URL", claude.url)
    monkeypatch.setenv("DOCJOBS_LLM__API_KEY", API_KEY)
    monkeypatch.setenv("DOCJOBS_LLM__MODEL", "claude-test-model")
    get_settings.cache_clear()
    answer = json.loads(json.dumps(EXPECTED))
    answer["invoice"]["total"] = "1,250.75"  # coerced to a number
    answer["invoice"]["date"] = "2025-05-26T00:00:00Z"  # coerced to a date
    claude.answer_tool(answer)
    try:
        operation = Extract(template_id="tpl-1", template=TEMPLATE, engine="llm")
        output = engines.run(
            operation, documents.pdf, "application/pdf", workdir=documents.pdf.parent
        )
    finally:
        get_settings.cache_clear()

    assert json.loads(output.path.read_bytes()) == EXPECTED
    assert output.details == {
        "fields_found": 5,
        "fields_total": 5,
        "engine": "llm",
        "ocr": "simple",
    }
    [request] = claude.requests
    assert request["path"] == "/v1/messages"
    assert API_KEY in (request["headers"]["x-api-key"] or request["headers"]["Authorization"])
    body = request["body"]
    assert body["model"] == "claude-test-model"
    assert body["tool_choice"] == {"type": "tool", "name": "record_fields"}
    [tool] = body["tools"]
    assert tool["name"] == "record_fields"
    schema = tool["input_schema"]
    assert set(schema["properties"]["invoice"]["properties"]) == {
        "number",
        "date",
        "total",
        "vendor",
    }
    assert set(schema["properties"]["items"]["items"]["properties"]) == {
        "description",
        "quantity",
        "unit_price",
        "amount",
    }
    [message] = body["messages"]
    assert message["role"] == "user"
    assert [block["type"] for block in message["content"]] == ["text"]
    text = message["content"][0]["text"]
    for printed in ("INV-2025-001", "26/05/2025", "Acme Corporation", "Total: $1,250.75"):
        assert printed in text


def test_llm_engine_shows_claude_the_pages_of_a_scan(
    claude: ClaudeStandIn, documents: Documents
) -> None:
    scan = extract_text.read(
        documents.png, "image/png", "eng", keep_images=extract_llm.MAX_IMAGE_PAGES
    )
    claude.answer_tool(EXPECTED)
    assert extract_llm.extract_fields(TEMPLATE, scan, settings_for(claude)) == EXPECTED
    content = claude.requests[0]["body"]["messages"][0]["content"]
    assert [block["type"] for block in content] == ["image", "text"]
    source = content[0]["source"]
    assert source["type"] == "base64"
    assert source["media_type"] == "image/png"
    image = Image.open(io.BytesIO(base64.b64decode(source["data"])))
    assert max(image.size) <= extract_text.IMAGE_LONG_EDGE
    assert "INV-2025-001" in content[1]["text"]
    assert "scanned" in content[1]["text"]


def malformed_answers(claude: ClaudeStandIn, kind: str) -> None:
    if kind == "text only":
        claude.answer_content([{"type": "text", "text": "The total is lots."}], "end_turn")
    elif kind == "wrong type":
        claude.answer_tool({"invoice": {"total": "lots"}})
    elif kind == "not an object":
        claude.answer_tool({"invoice": "INV-2025-001"})
    elif kind == "cut off":
        claude.answer_tool({"invoice": {}}, stop_reason="max_tokens")
    elif kind == "invalid json":
        claude.answers.append((200, b'{"id": "msg_1", "content": [{"type": '))


@pytest.mark.parametrize(
    "kind", ["text only", "wrong type", "not an object", "cut off", "invalid json"]
)
def test_a_malformed_answer_fails_permanently(
    claude: ClaudeStandIn, text_document: DocumentText, kind: str
) -> None:
    malformed_answers(claude, kind)
    with pytest.raises(PermanentError) as failure:
        extract_llm.extract_fields(TEMPLATE, text_document, settings_for(claude))
    assert failure.value.reason == "MalformedModelAnswer"
    if kind == "wrong type":
        assert "invoice.total" in failure.value.message


@pytest.mark.parametrize(
    ("status", "kind"),
    [(529, "overloaded_error"), (500, "api_error"), (429, "rate_limit_error")],
)
def test_overload_and_server_errors_are_transient(
    claude: ClaudeStandIn, text_document: DocumentText, status: int, kind: str
) -> None:
    claude.answer_error(status, kind)
    with pytest.raises(extract_llm.LlmUnavailable) as failure:
        extract_llm.extract_fields(TEMPLATE, text_document, settings_for(claude))
    assert isinstance(failure.value, RuntimeError)
    assert not isinstance(failure.value, PermanentError)
    assert str(status) in str(failure.value)
    assert len(claude.requests) == 1  # no retries inside the attempt


def test_an_unreachable_server_is_transient(text_document: DocumentText) -> None:
    settings = LlmSettings(base_url="http://127.0.0.1:9", api_key=API_KEY, timeout_seconds=5)
    with pytest.raises(extract_llm.LlmUnavailable):
        extract_llm.extract_fields(TEMPLATE, text_document, settings)


def test_a_refused_request_or_missing_key_is_permanent(
    claude: ClaudeStandIn, text_document: DocumentText
) -> None:
    claude.answer_error(401, "authentication_error")
    with pytest.raises(PermanentError) as failure:
        extract_llm.extract_fields(TEMPLATE, text_document, settings_for(claude))
    assert failure.value.reason == "LlmRequestRejected"
    with pytest.raises(PermanentError) as failure:
        extract_llm.extract_fields(TEMPLATE, text_document, LlmSettings(base_url=claude.url))
    assert failure.value.reason == "LlmNotConfigured"
    assert len(claude.requests) == 1
