"""How the API server reads what it is sent, for the fake (:mod:`tests.fakekube`): namespaced
paths, JSON merge patches, label and field selectors."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from docjobs.kube.client import JSON, KubeError


@dataclass
class Where:
    """A path taken apart: the collection it names, and the object and subresource."""

    collection: str
    namespace: str
    plural: str
    name: str | None
    subresource: str | None


def parse_path(path: str) -> Where:
    segments = path.strip("/").split("/")
    try:
        at = segments.index("namespaces")
    except ValueError:
        raise KubeError(404, "NotFound", f"the fake serves namespaced paths only: {path}") from None
    rest = segments[at + 2 :]
    if not rest:
        raise KubeError(404, "NotFound", f"no collection in {path}")
    return Where(
        collection="/" + "/".join(segments[: at + 3]),
        namespace=unquote(segments[at + 1]),
        plural=rest[0],
        name=unquote(rest[1]) if len(rest) > 1 else None,
        subresource=unquote(rest[2]) if len(rest) > 2 else None,
    )


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, ``None`` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


def labels_match(obj: JSON, selector: str | None) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def fields_match(obj: JSON, selector: str | None) -> bool:
    for term in filter(None, (selector or "").split(",")):
        key, value = term.split("=", 1)
        if key != "metadata.name":
            raise KubeError(400, "BadRequest", f"the fake selects by metadata.name only: {key}")
        if obj["metadata"]["name"] != value:
            return False
    return True
