"""The Grafana dashboard the chart ships: found by the dashboard sidecar's label, and every
series its panels ask for is one docjobs exports, with the labels the panels group by (read
from the source here; ``test_dashboard_scraped.py`` finds each in a real scrape)."""

from __future__ import annotations

import json
import re
from typing import Any

from prometheus_client import Counter, Histogram

import docjobs.api.metrics
import docjobs.metrics
import docjobs.operator.metrics

from .conftest import REPO, VALUES, Render, find

SOURCES = [REPO / "docjobs", REPO / "api" / "src", REPO / "operator" / "src"]
METRIC_NAME = re.compile(r"\b(docjobs_[a-z_]+)\b")
SUFFIXES = ("_bucket", "_sum", "_count")
GROUPED_BY = re.compile(r"by \(([a-z_, ]+)\)")


def _exported_names() -> set[str]:
    """Every series name a docjobs process writes: counters, histograms and the gauge
    families its collectors build at scrape time."""
    names: set[str] = set()
    for root in SOURCES:
        for path in root.rglob("*.py"):
            names |= set(re.findall(r'"(docjobs_[a-z_]+)"', path.read_text()))
    return names


def _label_names() -> dict[str, set[str]]:
    """The labels of each counter and histogram, by the name a query uses."""
    labels: dict[str, set[str]] = {}
    for module in (docjobs.metrics, docjobs.api.metrics, docjobs.operator.metrics):
        for value in vars(module).values():
            if isinstance(value, Counter | Histogram):
                suffix = "_total" if isinstance(value, Counter) else ""
                labels[value._name + suffix] = set(value._labelnames)
    return labels


def _dashboard(render: Render, *extra: str) -> dict[str, Any] | None:
    manifests = render(VALUES / "defaults.yaml", "docjobs", *extra)
    maps = [
        m
        for m in manifests
        if m["kind"] == "ConfigMap" and m["metadata"]["name"].endswith("-grafana-dashboard")
    ]
    if not maps:
        return None
    (found,) = maps
    assert found["metadata"]["labels"]["grafana_dashboard"] == "1"
    loaded: dict[str, Any] = json.loads(found["data"]["docjobs.json"])
    return loaded


def test_the_dashboard_is_shipped_only_when_asked(render: Render) -> None:
    assert _dashboard(render) is None
    dashboard = _dashboard(render, "--set", "metrics.grafanaDashboard.enabled=true")
    assert dashboard is not None
    titles = " | ".join(panel["title"] for panel in dashboard["panels"])
    for wanted in (
        "waiting, by pool",
        "per second, by operation",
        "p50 and p99",
        "by reason",
        "by tier",
        "by tenant",
    ):
        assert wanted in titles, titles
    file = json.loads(
        (REPO / "charts" / "docjobs" / "files" / "grafana" / "docjobs-dashboard.json").read_text()
    )
    assert dashboard == file


def test_every_panel_asks_for_series_docjobs_exports(render: Render) -> None:
    dashboard = _dashboard(render, "--set", "metrics.grafanaDashboard.enabled=true")
    assert dashboard is not None
    exported, labels = _exported_names(), _label_names()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            used = METRIC_NAME.findall(expr)
            assert used, expr
            for name in used:
                series = next((name.removesuffix(s) for s in SUFFIXES if name.endswith(s)), name)
                assert series in exported, f"{panel['title']}: no docjobs process writes {name}"
                if series in labels:
                    for group in GROUPED_BY.findall(expr):
                        for label in (g.strip() for g in group.split(",")):
                            assert label == "le" or label in labels[series], (
                                f"{panel['title']}: {series} has no label {label!r}"
                            )


def test_the_dashboard_namespace_and_folder_are_values(render: Render) -> None:
    manifests = render(
        VALUES / "defaults.yaml",
        "docjobs",
        "--set",
        "metrics.grafanaDashboard.enabled=true",
        "--set",
        "metrics.grafanaDashboard.namespace=monitoring",
        "--set",
        "metrics.grafanaDashboard.annotations.grafana_folder=Documents",
    )
    found = find(manifests, "ConfigMap", "r-docjobs-grafana-dashboard")
    assert found["metadata"]["namespace"] == "monitoring"
    assert found["metadata"]["annotations"] == {"grafana_folder": "Documents"}
