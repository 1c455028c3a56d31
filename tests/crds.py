"""The repository's CRDs (``crds/``), installed or brought up to date on a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from docjobs.kube.client import KubeClient, KubeError
from tests.rig.fixtures import wait_for

REPO = Path(__file__).resolve().parents[1]
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
FILES = ("documentjob.yaml", "documenttemplate.yaml")


def install_crds(api: KubeClient, files: tuple[str, ...] = FILES) -> None:
    """Create or replace each CRD, then wait until the API server serves it (Established)."""
    for file in files:
        body: dict[str, Any] = yaml.safe_load((REPO / "crds" / file).read_text())
        name = body["metadata"]["name"]
        try:
            current = api.get(f"{CRDS}/{name}")
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            api.replace(f"{CRDS}/{name}", body)
        except KubeError as exc:
            if exc.status != 404:
                raise
            api.create(CRDS, body)

        def established(name: str = name) -> bool:
            conditions = api.get(f"{CRDS}/{name}").get("status", {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        wait_for(established, 30, 0.1, what=f"the CRD {name} to be established")
