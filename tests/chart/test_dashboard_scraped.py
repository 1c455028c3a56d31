"""Every series the chart's Grafana dashboard queries is in a real scrape after a few jobs,
one of them failed: the ``/metrics`` of an embedded API with per-tenant usage on, or the
registry of an operator whose controller took DocumentJobs through their lives (the one its
metrics port serves), with the labels each panel filters and groups by."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from docjobs.domain.clock import utcnow
from tests.conftest import Server
from tests.unit.operated import TENANT, failure, operated, success

from .conftest import REPO

DASHBOARD = REPO / "charts" / "docjobs" / "files" / "grafana" / "docjobs-dashboard.json"
SELECTOR = re.compile(r"\b(docjobs_[a-z_]+)\b(?:\{([^}]*)\})?")
MATCHER = re.compile(r'([a-z_]+)="([^"]*)"')
GROUPED_BY = re.compile(r"by \(([a-z_, ]+)\)")

Sample = tuple[str, frozenset[tuple[str, str]], float]


def _samples(exposition: str) -> set[Sample]:
    return {
        (sample.name, frozenset(sample.labels.items()), sample.value)
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def _queries() -> list[tuple[str, str, dict[str, str], set[str]]]:
    """Each series a panel asks for: the panel, the sample name, the label values it
    selects and the labels it groups by."""
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            grouped = {
                label.strip() for group in GROUPED_BY.findall(expr) for label in group.split(",")
            }
            selectors = SELECTOR.findall(expr)
            assert selectors, expr
            for name, matchers in selectors:
                found.append((panel["title"], name, dict(MATCHER.findall(matchers)), grouped))
    return found


def _api_scrape(make_server: Callable[..., Server]) -> set[Sample]:
    srv = make_server(
        DOCJOBS_USAGE__TENANT_METRICS="true", DOCJOBS_CEILINGS__MAX_CONVERT_PAGES="2"
    ).start()
    headers = {"X-API-Key": srv.key("scraped")}
    too_long = "\n".join(f"line {n}" for n in range(2000)).encode()
    uploads: list[dict[str, Any]] = [
        {"data": {"content": "a note"}},
        {"data": {"content": "another note"}},
        {"files": {"file": ("long.txt", too_long)}},  # past the page ceiling: it fails
    ]
    job_ids = []
    for upload in uploads:
        response = requests.post(
            f"{srv.base}/api/v1/convert/text-to-pdf",
            headers=headers,
            params={"async": "true"},
            timeout=30,
            **upload,
        )
        assert response.status_code == 202, response.text
        job_ids.append(response.json()["job_id"])
    statuses = []
    deadline = time.monotonic() + 60
    for job_id in job_ids:
        while time.monotonic() < deadline:
            job = requests.get(f"{srv.base}/api/v1/jobs/{job_id}", headers=headers, timeout=10)
            if job.json()["status"] in ("complete", "failed", "cancelled"):
                statuses.append(job.json()["status"])
                break
            time.sleep(0.1)
    assert statuses == ["complete", "complete", "failed"], statuses
    return _samples(requests.get(f"{srv.base}/metrics", timeout=10).text)


def _operator_scrape(tmp_path: Path) -> set[Sample]:
    """What the operator's registry holds after its controller ran jobs, less what it held
    before (this process's registry is shared with other tests)."""
    op = operated(tmp_path)
    try:
        before = _samples(generate_latest(REGISTRY).decode())
        done, failing, running = op.submit(), op.submit(), op.submit()
        op.submit(created_at=utcnow() - timedelta(seconds=30))  # still waiting at the scrape
        op.start(done)
        op.finish(f"{done}-a1", 0, success(TENANT, op.job_id(done)))
        op.start(failing)
        op.finish(f"{failing}-a1", 42, failure("UnreadableDocument", permanent=True))
        op.start(running)
        assert op.status(done)["phase"] == "Complete"
        assert op.status(failing)["phase"] == "Failed"
        return _samples(generate_latest(REGISTRY).decode()) - before
    finally:
        op.controller.stop()


def test_every_series_the_dashboard_queries_is_in_a_scrape(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    scrapes = {"api": _api_scrape(make_server), "operator": _operator_scrape(tmp_path)}
    for title, name, selected, grouped in _queries():
        wanted = {(label, value) for label, value in selected.items()}
        matching = [
            (source, labels)
            for source, samples in scrapes.items()
            for sample_name, labels, _ in samples
            if sample_name == name and wanted <= labels
        ]
        assert matching, f"{title}: no scrape has {name} with {selected}"
        keys = {label for _, labels in matching for label, _ in labels}
        assert grouped <= keys, f"{title}: {name} has no label {sorted(grouped - keys)}"
