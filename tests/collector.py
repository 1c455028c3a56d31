"""A real OpenTelemetry Collector for the trace tests: OTLP/HTTP in, spans to a file.

``tests/rig/build.sh`` builds it from its Go modules (``tests/rig/otelcol``) into the rig's
cache, outside any test's timeout; :func:`running_collector` starts one on a free loopback
port and reads back the spans it wrote.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.timeouts import run_outside_test_timeout

BUILD = Path(__file__).parent / "rig" / "build.sh"
BUILD_TIMEOUT = 1200

CONFIG = """\
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
exporters:
  file:
    path: {path}
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
"""


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str


@dataclass(frozen=True)
class Collector:
    endpoint: str
    """Base URL of its OTLP/HTTP receiver, as ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes it."""
    spans_file: Path

    def spans(self) -> list[Span]:
        if not self.spans_file.exists():
            return []
        found = []
        for line in self.spans_file.read_text().splitlines():
            if not line.strip():
                continue
            for resource_spans in json.loads(line).get("resourceSpans", []):
                attributes = resource_spans.get("resource", {}).get("attributes", [])
                service = next(
                    (
                        a["value"].get("stringValue", "")
                        for a in attributes
                        if a["key"] == "service.name"
                    ),
                    "",
                )
                for scope in resource_spans.get("scopeSpans", []):
                    for span in scope.get("spans", []):
                        found.append(
                            Span(
                                service,
                                span["name"],
                                span["traceId"],
                                span["spanId"],
                                span.get("parentSpanId", ""),
                            )
                        )
        return found

    def wait_for(
        self, trace_id: str, wanted: set[tuple[str, str]], timeout: float = 30
    ) -> list[Span]:
        """The spans of ``trace_id`` once it holds every ``(service, span name)`` wanted."""
        deadline = time.monotonic() + timeout
        while True:
            spans = [s for s in self.spans() if s.trace_id == trace_id]
            got = {(s.service, s.name) for s in spans}
            if wanted <= got:
                return spans
            if time.monotonic() > deadline:
                pytest.fail(f"trace {trace_id}: wanted {sorted(wanted)}, got {sorted(got)}")
            time.sleep(0.2)


def collector_binary() -> Path:
    """The built ``otelcol``, built first if it is missing (outside the test's timeout)."""
    printed = subprocess.run([str(BUILD), "--print"], text=True, stdout=subprocess.PIPE, check=True)
    dirs = dict(line.split("=", 1) for line in printed.stdout.splitlines() if "=" in line)
    binary = Path(dirs["OTELCOL_BIN"]) / "otelcol"
    if not binary.exists():
        if shutil.which("go") is None:
            pytest.skip("the collector is not built and there is no Go toolchain to build it")
        run_outside_test_timeout([str(BUILD), "otelcol"], BUILD_TIMEOUT, "building otelcol")
    return binary


@contextmanager
def running_collector(directory: Path) -> Iterator[Collector]:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    spans_file = directory / "spans.jsonl"
    config = directory / "otelcol.yaml"
    config.write_text(CONFIG.format(port=port, path=spans_file))
    log = (directory / "otelcol.log").open("ab")
    process = subprocess.Popen(
        [str(collector_binary()), "--config", f"file:{config}"], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"otelcol exited: {(directory / 'otelcol.log').read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("otelcol did not listen within 30 s")
                time.sleep(0.1)
        yield Collector(f"http://127.0.0.1:{port}", spans_file)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
