"""The watch cache's index, against the rig's API server: a lookup by key finds exactly the
objects the server holds with that key, through additions, changes, deletions and relists.

The Kubernetes backend finds a submission's earlier jobs this way; ConfigMaps stand in for
DocumentJobs here because the index is the cache's, whatever it holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from docjobs.kube.cache import WatchCache
from docjobs.kube.client import KubeClient
from docjobs.kube.paths import core_path
from tests.rig.fixtures import wait_for

ConfigMap = dict[str, Any]


def _group(configmap: ConfigMap) -> str:
    """The namespace's own ConfigMaps (``kube-root-ca.crt``) have no group: key ""."""
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
def cache(kube: KubeClient, namespace: str) -> Iterator[WatchCache[ConfigMap]]:
    for name, group in (("a", "x"), ("b", "x"), ("c", "y")):
        kube.create(core_path(namespace, "configmaps"), _configmap(name, group))
    cache: WatchCache[ConfigMap] = WatchCache(
        kube, core_path(namespace, "configmaps"), lambda c: c, index=_group, name="index-test"
    )
    cache.start()
    assert cache.wait_ready(30), cache.last_error
    yield cache
    cache.stop()


def _names(cache: WatchCache[ConfigMap], group: str) -> set[str]:
    return {c["metadata"]["name"] for c in cache.indexed(group)}


def _until(cache: WatchCache[ConfigMap], want: dict[str, set[str]]) -> None:
    def matches() -> bool:
        return all(_names(cache, group) == names for group, names in want.items())

    wait_for(matches, 20, 0.05, what=f"the index to read {want}")


def test_the_index_follows_the_server(
    kube: KubeClient, namespace: str, cache: WatchCache[ConfigMap]
) -> None:
    # Kept by the first list ...
    assert (_names(cache, "x"), _names(cache, "y"), _names(cache, "z")) == (
        {"a", "b"},
        {"c"},
        set(),
    )
    # ... and by the watch: an addition, a change of key, a deletion.
    kube.create(core_path(namespace, "configmaps"), _configmap("d", "x"))
    _until(cache, {"x": {"a", "b", "d"}})
    kube.merge_patch(core_path(namespace, "configmaps", "b"), {"data": {"group": "y"}})
    _until(cache, {"x": {"a", "d"}, "y": {"b", "c"}})
    kube.delete(core_path(namespace, "configmaps", "a"))
    _until(cache, {"x": {"d"}, "y": {"b", "c"}})

    # A deletion the watch missed (the cache took in an object the server no longer holds)
    # is mended by the next relist, index included.
    cache.observe({"metadata": {"name": "gone", "resourceVersion": "1"}, "data": {"group": "x"}})
    assert _names(cache, "x") == {"d", "gone"}
    # The path a 410 Gone takes: the API server cannot be made to expire a version on demand.
    cache._relist()
    assert (_names(cache, "x"), _names(cache, "y")) == ({"d"}, {"b", "c"})
    kube.delete(core_path(namespace, "configmaps", "d"))
    _until(cache, {"x": set(), "y": {"b", "c"}})
