"""The chart's tracing value: the endpoint reaches every docjobs process through the
ConfigMap (the operator hands it on to runner pods), and the runner and worker pods'
NetworkPolicies let them reach the collector only while it is set."""

from __future__ import annotations

import pytest

from docjobs.config import Settings

from .conftest import RELEASE, VALUES, Manifest, Render, find

ENDPOINT = "http://otel-collector.observability:4318"


def _egress_ports(manifests: list[Manifest], policy: str) -> set[int]:
    rules = find(manifests, "NetworkPolicy", f"{RELEASE}-docjobs-{policy}")["spec"]["egress"]
    return {port["port"] for rule in rules for port in rule.get("ports", [])}


def test_the_otlp_endpoint_reaches_the_settings_and_opens_egress_to_it(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    traced = render(
        VALUES / "defaults.yaml", "docjobs", "--set", f"tracing.otlpEndpoint={ENDPOINT}"
    )
    config = find(traced, "ConfigMap", f"{RELEASE}-docjobs-config")["data"]
    for name, value in config.items():
        monkeypatch.setenv(name, value)
    assert Settings().tracing.endpoint() == ENDPOINT
    assert 4318 in _egress_ports(traced, "runner")

    plain = render(VALUES / "defaults.yaml")
    assert (
        "DOCJOBS_TRACING__OTLP_ENDPOINT"
        not in find(plain, "ConfigMap", f"{RELEASE}-docjobs-config")["data"]
    )
    assert 4318 not in _egress_ports(plain, "runner")
