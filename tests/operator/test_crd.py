"""The CRD: generated from the models, current in crds/, accepted and enforced by the API
server."""

from __future__ import annotations

import copy
import subprocess
from datetime import UTC, datetime

import pytest

from docjobs.domain.models import InputRef, JobSpec, OcrSimple
from docjobs.kube.crd import render_crds
from docjobs.kube.resources import API_VERSION, PLURAL, to_resource
from tests.conftest import BIN
from tests.rig.fixtures import Cluster
from tests.rig.kubeapi import ApiError

from .conftest import CRD_FILE


def test_crds_folder_is_current() -> None:
    assert CRD_FILE.read_text() == render_crds(), "run: docjobs crd > crds/documentjob.yaml"
    printed = subprocess.run([str(BIN / "docjobs"), "crd"], capture_output=True, text=True)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == render_crds()


def _resource(namespace: str, name: str) -> dict:
    spec = JobSpec(
        job_id=name.replace("-", "_", 1),
        tenant="acme",
        operation=OcrSimple(),
        input=InputRef(
            key="acme/x/input", file_name="a.png", content_type="image/png", sha256="0", size=1
        ),
        created_at=datetime.now(UTC),
    )
    return to_resource(spec, namespace)


def test_api_server_validates_documentjobs(cluster: Cluster, namespace: str, crd: None) -> None:
    api = cluster.api()
    path = f"/apis/{API_VERSION}/namespaces/{namespace}/{PLURAL}"

    good = api.create(path, _resource(namespace, "job-good"))
    assert good["spec"]["operation"] == {
        "kind": "ocr.simple",
        "language": "eng",
        "output": "simple",
    }

    # An unknown spec field: rejected under strict field validation, pruned otherwise.
    extra = _resource(namespace, "job-extra")
    extra["spec"]["priority"] = "high"
    with pytest.raises(ApiError) as strict:
        api.request("POST", path, extra, params={"fieldValidation": "Strict"})
    assert strict.value.status in (400, 422) and "priority" in strict.value.body
    stored = api.request("POST", path, extra, params={"fieldValidation": "Ignore"})
    assert "priority" not in stored["spec"]

    # An operation kind that does not exist.
    bad_kind = _resource(namespace, "job-badkind")
    bad_kind["spec"]["operation"]["kind"] = "ocr.magic"
    with pytest.raises(ApiError) as rejected:
        api.create(path, bad_kind)
    assert rejected.value.status == 422 and "ocr.magic" in rejected.value.body

    # A field of another operation (the merged union keeps kinds apart with CEL rules).
    mixed = _resource(namespace, "job-mixed")
    mixed["spec"]["operation"]["sourceFormat"] = "html"
    with pytest.raises(ApiError) as mixed_up:
        api.create(path, mixed)
    assert mixed_up.value.status == 422 and "ocr.simple" in mixed_up.value.body

    # Required fields.
    missing = copy.deepcopy(_resource(namespace, "job-missing"))
    del missing["spec"]["input"]["sha256"]
    with pytest.raises(ApiError) as required:
        api.create(path, missing)
    assert required.value.status == 422 and "sha256" in required.value.body

    # The definition of a job is immutable; a cancel request cannot be withdrawn.
    with pytest.raises(ApiError) as immutable:
        api.patch(f"{path}/job-good", {"spec": {"tenant": "someone-else"}})
    assert immutable.value.status == 422 and "immutable" in immutable.value.body
    api.patch(f"{path}/job-good", {"spec": {"cancel": True}})
    with pytest.raises(ApiError) as withdrawn:
        api.patch(f"{path}/job-good", {"spec": {"cancel": False}})
    assert withdrawn.value.status == 422
