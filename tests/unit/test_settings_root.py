"""One settings root: the operator's ``DOCJOBS_OPERATOR__*`` variables are a section of
``Settings``, and every process builds its clients from the same settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from docjobs.config import Settings
from docjobs.domain.models import Engine

DOCJOBS = Path(sys.executable).with_name("docjobs")


def test_operator_variables_are_the_operator_section(monkeypatch: pytest.MonkeyPatch) -> None:
    doctr_on_cpu = {
        "pool": "cpu",
        "requests": {"cpu": "2", "memory": "3Gi"},
        "limits": {"memory": "6Gi"},
        "active_deadline_seconds": 600,
    }
    monkeypatch.setenv("DOCJOBS_OPERATOR__SHARD_PARALLELISM", "3")
    monkeypatch.setenv("DOCJOBS_OPERATOR__RUNNER_ENV", '{"DOCJOBS_LLM__BASE_URL": "http://gw"}')
    monkeypatch.setenv("DOCJOBS_OPERATOR__ENGINES", json.dumps({"doctr": doctr_on_cpu}))
    monkeypatch.setenv("DOCJOBS_S3__BUCKET", "shared")

    settings = Settings()

    assert settings.operator.shard_parallelism == 3
    assert settings.operator.runner_env == {"DOCJOBS_LLM__BASE_URL": "http://gw"}
    # A map given as JSON replaces the whole default map, as the chart's ConfigMap relies on.
    assert list(settings.operator.engines) == [Engine.DOCTR]
    assert settings.operator.engines[Engine.DOCTR].limits == {"memory": "6Gi"}
    assert settings.s3.bucket == "shared"


def test_operator_defaults_without_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("DOCJOBS_OPERATOR__"):
            monkeypatch.delenv(name)

    operator = Settings().operator

    assert operator.namespace is None
    assert set(operator.engines) == set(Engine)
    assert operator.engines[Engine.DOCTR].pool == "gpu"
    assert operator.pools["gpu"].extra_limits == {"nvidia.com/gpu": "1"}


def _without_object_store(tmp_path: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith(("DOCJOBS_", "KUBERNETES_"))
    }
    # A kubeconfig that is not there: nothing may reach a cluster before the store check.
    env["KUBECONFIG"] = str(tmp_path / "no-kubeconfig")
    return env


def test_operator_without_object_store_exits_naming_the_setting(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(DOCJOBS), "operator", "--liveness-port", "0", "--metrics-port", "0"],
        env=_without_object_store(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1
    assert "the operator needs the object store" in done.stderr
    assert "DOCJOBS_S3_ENDPOINT" in done.stderr


def test_kubernetes_server_without_object_store_exits_naming_the_setting(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(DOCJOBS), "serve", "--backend", "kubernetes", "--port", "0"],
        env=_without_object_store(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1
    assert "error: on kubernetes, files live in S3" in done.stderr
    assert "DOCJOBS_S3_ENDPOINT" in done.stderr
