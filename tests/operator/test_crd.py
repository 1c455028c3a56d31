"""The CRD: generated from the models, current in crds/, accepted and enforced by the API
server."""

from __future__ import annotations

import copy
import subprocess

import pytest

from docjobs.backends.base import new_job_id
from docjobs.kube.client import KubeError
from docjobs.kube.crd import render_crds
from docjobs.kube.paths import documentjobs_path
from tests.conftest import BIN
from tests.rig.fixtures import Cluster
from tests.unit.test_documentjob_spec import documentjob_resource

from .conftest import CRD_FILE


def test_crds_folder_is_current() -> None:
    assert CRD_FILE.read_text() == render_crds(), "run: docjobs crd > crds/documentjob.yaml"
    printed = subprocess.run([str(BIN / "docjobs"), "crd"], capture_output=True, text=True)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == render_crds()


def _resource(namespace: str) -> dict:
    return documentjob_resource(new_job_id(), namespace=namespace)


def test_api_server_validates_documentjobs(cluster: Cluster, namespace: str, crd: None) -> None:
    api = cluster.api()
    path = documentjobs_path(namespace)

    good = api.create(path, _resource(namespace))
    good_path = f"{path}/{good['metadata']['name']}"
    assert good["spec"]["operation"] == {
        "kind": "ocr.simple",
        "language": "eng",
        "output": "simple",
    }

    # An unknown spec field: rejected under strict field validation, pruned otherwise.
    extra = _resource(namespace)
    extra["spec"]["priority"] = "high"
    with pytest.raises(KubeError) as strict:
        api.create(path, extra, fieldValidation="Strict")
    assert strict.value.status in (400, 422) and "priority" in strict.value.message
    stored = api.create(path, extra, fieldValidation="Ignore")
    assert "priority" not in stored["spec"]

    # An operation kind that does not exist.
    bad_kind = _resource(namespace)
    bad_kind["spec"]["operation"]["kind"] = "ocr.magic"
    with pytest.raises(KubeError) as rejected:
        api.create(path, bad_kind)
    assert rejected.value.status == 422 and "ocr.magic" in rejected.value.message

    # A field of another operation (the merged union keeps kinds apart with CEL rules).
    mixed = _resource(namespace)
    mixed["spec"]["operation"]["sourceFormat"] = "html"
    with pytest.raises(KubeError) as mixed_up:
        api.create(path, mixed)
    assert mixed_up.value.status == 422 and "ocr.simple" in mixed_up.value.message

    # The auto tier's threshold: its own field, bounded, and refused on another kind.
    auto = _resource(namespace)
    auto["spec"]["operation"] |= {"kind": "ocr.auto", "confidenceThreshold": 60}
    assert api.create(path, auto)["spec"]["operation"]["confidenceThreshold"] == 60
    for kind, threshold, named in (
        ("ocr.auto", 101, "confidenceThreshold"),
        ("ocr.simple", 60, "ocr.simple"),
    ):
        wrong = _resource(namespace)
        wrong["spec"]["operation"] |= {"kind": kind, "confidenceThreshold": threshold}
        with pytest.raises(KubeError) as refused:
            api.create(path, wrong)
        assert refused.value.status == 422 and named in refused.value.message

    # Required fields.
    missing = copy.deepcopy(_resource(namespace))
    del missing["spec"]["input"]["sha256"]
    with pytest.raises(KubeError) as required:
        api.create(path, missing)
    assert required.value.status == 422 and "sha256" in required.value.message

    # The definition of a job is immutable; a cancel request cannot be withdrawn.
    with pytest.raises(KubeError) as immutable:
        api.patch(good_path, {"spec": {"tenant": "someone-else"}})
    assert immutable.value.status == 422 and "immutable" in immutable.value.message
    api.patch(good_path, {"spec": {"cancel": True}})
    with pytest.raises(KubeError) as withdrawn:
        api.patch(good_path, {"spec": {"cancel": False}})
    assert withdrawn.value.status == 422
