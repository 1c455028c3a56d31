"""The fake API server answers as the real one does where the operator's and the claims'
tests rely on it: conflicts, the status subresource, selection and watches."""

from __future__ import annotations

import threading

import pytest

from docjobs.kube.cache import WatchCache
from docjobs.kube.client import KubeError
from tests.fakekube import FakeKube

JOBS = "/apis/batch/v1/namespaces/ns/jobs"
SECRETS = "/api/v1/namespaces/ns/secrets"


def _job(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}, "spec": {"parallelism": 1}}


def test_a_write_with_a_stale_resource_version_is_refused() -> None:
    kube = FakeKube()
    created = kube.create(JOBS, _job("a"))
    kube.merge_patch(f"{JOBS}/a", {"metadata": {"labels": {"seen": "yes"}}})

    stale = {**created, "spec": {"parallelism": 2}}
    with pytest.raises(KubeError) as refused:
        kube.replace(f"{JOBS}/a", stale)
    assert refused.value.conflict
    with pytest.raises(KubeError) as exists:
        kube.create(JOBS, _job("a"))
    assert exists.value.conflict
    with pytest.raises(KubeError) as missing:
        kube.get(f"{JOBS}/b")
    assert missing.value.not_found
    assert kube.delete(f"{JOBS}/b", missing_ok=True) == {}


def test_status_changes_only_through_its_subresource() -> None:
    kube = FakeKube()
    created = kube.create(JOBS, {**_job("a"), "status": {"active": 1}})
    assert "status" not in created and created["metadata"]["generation"] == 1

    kube.replace(f"{JOBS}/a/status", {**created, "status": {"succeeded": 1}, "spec": {}})
    after = kube.replace(f"{JOBS}/a", {**kube.get(f"{JOBS}/a"), "status": {"failed": 1}})

    assert after["status"] == {"succeeded": 1}
    assert after["spec"] == {"parallelism": 1} and after["metadata"]["generation"] == 1
    spec_changed = kube.merge_patch(f"{JOBS}/a", {"spec": {"parallelism": 3}})
    assert spec_changed["metadata"]["generation"] == 2
    assert int(spec_changed["metadata"]["resourceVersion"]) > int(
        created["metadata"]["resourceVersion"]
    )


def test_lists_select_by_label_and_come_in_pages() -> None:
    kube = FakeKube()
    for name, pool in (("a", "cpu"), ("b", "gpu"), ("c", "cpu")):
        kube.create(JOBS, _job(name, pool=pool))

    assert [j["metadata"]["name"] for j in kube.items(JOBS, {"pool": "cpu"})] == ["a", "c"]
    assert [j["metadata"]["name"] for j in kube.items(JOBS, labelSelector="pool!=cpu")] == ["b"]
    first = kube.get(JOBS, limit=2)
    rest = kube.get(JOBS, limit=2, **{"continue": first["metadata"]["continue"]})
    assert len(first["items"]) == 2 and len(rest["items"]) == 1


def test_injected_faults_answer_before_anything_is_applied() -> None:
    kube = FakeKube()
    kube.fail("POST", JOBS, 500, times=2)
    for _ in range(2):
        with pytest.raises(KubeError) as failed:
            kube.create(JOBS, _job("a"))
        assert failed.value.status == 500
    kube.create(JOBS, _job("a"))
    assert kube.names(JOBS) == ["a"]


def test_a_watch_cache_follows_the_fake_and_a_secret_keeps_its_data() -> None:
    kube = FakeKube()
    kube.create(JOBS, _job("a"))
    cache: WatchCache[dict] = WatchCache(kube, JOBS, lambda r: r, watch_timeout_seconds=1)  # type: ignore[arg-type]
    cache.start()
    try:
        assert cache.wait_ready(5)
        kube.create(JOBS, _job("b"))
        kube.delete(f"{JOBS}/a")
        seen = threading.Event()
        for _ in range(200):
            if {j["metadata"]["name"] for j in cache.values()} == {"b"}:
                seen.set()
                break
            seen.wait(0.02)
        assert seen.is_set(), cache.values()
    finally:
        cache.stop()

    kube.update_data("ns", "secrets", "keys", lambda data: data.update(k="v"))
    assert kube.read_data("ns", "secrets", "keys") == {"k": "v"}
    assert kube.names(SECRETS) == ["keys"]
