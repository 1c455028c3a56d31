"""The Helm chart: the pinned ``helm`` (built by tests/rig/build.sh from its Go module) and
rendering the chart with a values file. Rig tests import the rig's fixtures from here."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.rig.fixtures import (  # noqa: F401
    RIG_DIR,
    build_outside_test_timeout,
    cluster,
    kubectl,
    namespace,
)

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "docjobs"
VALUES = Path(__file__).resolve().parent / "values"
RELEASE = "r"

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]


def _helm_path() -> Path:
    out = subprocess.run(
        [str(RIG_DIR / "build.sh"), "--print"], check=True, text=True, stdout=subprocess.PIPE
    ).stdout
    dirs = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return Path(dirs["HELM_BIN"]) / "helm"


@pytest.fixture(scope="session")
def helm() -> str:
    """The pinned helm; built on first use outside the test's timeout, skipped without Go."""
    path = _helm_path()
    if not path.exists():
        if shutil.which("go") is None:
            pytest.skip("helm is not built and there is no Go toolchain to build it")
        build_outside_test_timeout()
    return str(path)


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], text=True, capture_output=True, timeout=120)


def template_text(helm: str, values: Path, ns: str = "docjobs", *extra: str) -> str:
    done = run_helm(
        helm, "template", RELEASE, str(CHART), "--namespace", ns, "-f", str(values), *extra
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="session")
def render(helm: str) -> Render:
    """``render(values_file, ns="docjobs", *helm_args)``: the manifests, parsed."""

    def render(values: Path, ns: str = "docjobs", *extra: str) -> list[Manifest]:
        text = template_text(helm, values, ns, *extra)
        return [doc for doc in yaml.safe_load_all(text) if doc]

    return render


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    for manifest in manifests:
        if manifest["kind"] == kind and manifest["metadata"]["name"] == name:
            return manifest
    raise AssertionError(f"no {kind} {name} in {[m['kind'] for m in manifests]}")


def kubectl_run(
    cluster_kubeconfig: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl(), "--kubeconfig", str(cluster_kubeconfig), *args],
        input=stdin,
        text=True,
        capture_output=True,
        timeout=120,
    )
