"""The watch cache's index, on the fake API server: a lookup by key finds exactly the
objects the server holds with that key, through additions, changes, deletions and relists.

The Kubernetes backend finds a submission's earlier jobs this way; ConfigMaps stand in for
DocumentJobs here because the index is the cache's, whatever it holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from docjobs.kube.cache import WatchCache
from docjobs.kube.paths import core_path
from tests.fakekube import FakeKube
from tests.unit.operated import wait_until

ConfigMap = dict[str, Any]
NS = "docjobs"


def _group(configmap: ConfigMap) -> str:
    group: str = (configmap.get("data") or {}).get("group", "")
    return group


def _configmap(name: str, group: str) -> ConfigMap:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"group": group},
    }


@pytest.fixture
def kube() -> FakeKube:
    kube = FakeKube()
    for name, group in (("a", "x"), ("b", "x"), ("c", "y")):
        kube.create(core_path(NS, "configmaps"), _configmap(name, group))
    return kube


@pytest.fixture
def cache(kube: FakeKube) -> Iterator[WatchCache[ConfigMap]]:
    cache: WatchCache[ConfigMap] = WatchCache(
        kube,  # type: ignore[arg-type]
        core_path(NS, "configmaps"),
        lambda c: c,
        index=_group,
        name="index-test",
    )
    cache.start()
    assert cache.wait_ready(10), cache.last_error
    yield cache
    cache.stop()


def _names(cache: WatchCache[ConfigMap], group: str) -> set[str]:
    return {c["metadata"]["name"] for c in cache.indexed(group)}


def _until(cache: WatchCache[ConfigMap], want: dict[str, set[str]]) -> None:
    def matches() -> bool:
        return all(_names(cache, group) == names for group, names in want.items())

    wait_until(matches, 10, what=f"the index to read {want}")


def test_the_index_follows_the_server(kube: FakeKube, cache: WatchCache[ConfigMap]) -> None:
    # Kept by the first list ...
    assert (_names(cache, "x"), _names(cache, "y"), _names(cache, "z")) == (
        {"a", "b"},
        {"c"},
        set(),
    )
    # ... and by the watch: an addition, a change of key, a deletion.
    kube.create(core_path(NS, "configmaps"), _configmap("d", "x"))
    _until(cache, {"x": {"a", "b", "d"}})
    kube.merge_patch(core_path(NS, "configmaps", "b"), {"data": {"group": "y"}})
    _until(cache, {"x": {"a", "d"}, "y": {"b", "c"}})
    kube.delete(core_path(NS, "configmaps", "a"))
    _until(cache, {"x": {"d"}, "y": {"b", "c"}})

    # A deletion the watch missed (the cache took in an object the server no longer holds)
    # is mended by the relist that follows a 410 Gone, index included.
    cache.observe({"metadata": {"name": "gone", "resourceVersion": "1"}, "data": {"group": "x"}})
    assert _names(cache, "x") == {"d", "gone"}
    lists = sum(1 for c in kube.calls if c.verb == "GET")
    kube.compact()
    _until(cache, {"x": {"d"}, "y": {"b", "c"}})
    assert sum(1 for c in kube.calls if c.verb == "GET") > lists, "listed again"
    kube.delete(core_path(NS, "configmaps", "d"))
    _until(cache, {"x": set(), "y": {"b", "c"}})


def test_ended_watches_resume_without_listing_again(kube: FakeKube) -> None:
    cache: WatchCache[ConfigMap] = WatchCache(
        kube,  # type: ignore[arg-type]
        core_path(NS, "configmaps"),
        lambda c: c,
        watch_timeout_seconds=1,
    )
    cache.start()
    try:
        assert cache.wait_ready(10)
        wait_until(lambda: sum(c.verb == "WATCH" for c in kube.calls) >= 3, 10, "3 watches")
        kube.merge_patch(core_path(NS, "configmaps", "c"), {"data": {"group": "z"}})
        wait_until(lambda: _group(cache.get("c") or {}) == "z", 10, "the change after watches")
    finally:
        cache.stop()
    assert sum(c.verb == "GET" for c in kube.calls) == 1, "one list, then watches only"
