"""A fake of :class:`docjobs.kube.client.KubeClient`: an API server in memory, for tests.

It keeps what the operator, the claims and the watch cache rely on, as controller-runtime's
fake client does for reconciler tests:

- every write bumps ``metadata.resourceVersion`` (one counter for all objects, as etcd's
  revision); a replace or patch carrying another resourceVersion than the stored one answers
  409 Conflict, a create of an existing name 409 AlreadyExists, anything missing 404;
- ``uid``, ``creationTimestamp`` and ``generation`` (bumped when the spec changes) are set by
  the fake, never by the writer;
- the ``/status`` subresource: a write there changes only ``status``, a write to the object
  never changes it, and a create drops it (as for every kind with that subresource here:
  all but Secrets and ConfigMaps);
- lists select by ``labelSelector`` (``k=v``, ``k!=v``, ``k``) and ``metadata.name``
  field selectors, in pages (``limit``/``continue``);
- watches deliver ADDED/MODIFIED/DELETED after a resourceVersion, as the API server does,
  and every event is also kept for a test to feed to the operator's entry points itself;
  after :meth:`FakeKube.compact`, a watch resumed from an older version answers 410 Gone.

What it leaves out: admission and schema validation, RBAC, garbage collection of owned
objects (a test deletes a Job's pods itself), finalizers, and the controllers that act on
objects (a test plays the Job controller and the kubelet with :meth:`FakeKube.write_status`).

Faults: :meth:`FakeKube.fail` makes the next calls of a verb to a path answer an error status;
:meth:`FakeKube.before` runs a test's action just before such a call is served (another
writer slipping in between a read and a write).
"""

from __future__ import annotations

import copy
import itertools
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from docjobs.domain.clock import iso, utcnow
from docjobs.kube.client import JSON, KubeClient, KubeError
from docjobs.storage.local import LocalStore
from docjobs.storage.presigned import Method
from tests.kubewire import Where, fields_match, labels_match, merge, parse_path

PLAIN_KINDS = frozenset({"secrets", "configmaps"})
"""Collections without a status subresource: a create or replace keeps what it is given."""


@dataclass(frozen=True)
class Call:
    verb: str
    path: str
    body: JSON | None = None


@dataclass(frozen=True)
class Event:
    collection: str
    type: str
    """ADDED, MODIFIED or DELETED."""
    object: JSON
    version: int


@dataclass
class _Rule:
    verb: str
    path: str
    times: int
    status: int = 0
    action: Callable[[], None] | None = None


class FakeWatch:
    """One watch: the events after its resourceVersion, as they happen, until closed or
    its server-side timeout passes (then it ends, as the API server ends a watch)."""

    def __init__(
        self,
        kube: FakeKube,
        collection: str,
        after: int,
        timeout: float,
        initial: list[JSON],
        error: JSON | None = None,
    ) -> None:
        self._kube = kube
        self._initial = initial
        self._error = error
        self._collection = collection
        self._after = after
        self._timeout = timeout
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[JSON]:
        deadline = threading.Event()
        timer = threading.Timer(self._timeout, deadline.set)
        timer.daemon = True
        timer.start()
        try:
            if self._error is not None:
                yield self._error
                return
            for obj in self._initial:
                yield {"type": "ADDED", "object": obj}
            while not self._closed.is_set() and not deadline.is_set():
                events = self._kube._wait_events(self._collection, self._after, 0.05)
                for event in events:
                    if self._closed.is_set():
                        return
                    self._after = event.version
                    yield {"type": event.type, "object": copy.deepcopy(event.object)}
        finally:
            timer.cancel()

    def __enter__(self) -> FakeWatch:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()


@dataclass
class FakeKube:
    """In-memory API server with :class:`KubeClient`'s methods; thread-safe."""

    objects: dict[str, dict[str, JSON]] = field(default_factory=dict)
    """collection path -> name -> object (as stored: read through the methods for copies)."""
    calls: list[Call] = field(default_factory=list)
    """Every request served or refused, in order."""
    history: list[Event] = field(default_factory=list)
    """Every change, in order: what a watch from the beginning would see."""
    _version: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _current: int = 0
    _rules: list[_Rule] = field(default_factory=list)
    _compacted: int = 0
    _watches: set[FakeWatch] = field(default_factory=set)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    # --- faults ----------------------------------------------------------------------------

    def fail(self, verb: str, path: str, status: int = 500, times: int = 1) -> None:
        """The next ``times`` requests ``verb path`` answer ``status`` (500: the API server
        failed; 409: a conflict) without being applied."""
        with self._changed:
            self._rules.append(_Rule(verb, path, times, status=status))

    def before(self, verb: str, path: str, action: Callable[[], None], times: int = 1) -> None:
        """Run ``action`` just before each of the next ``times`` requests ``verb path``."""
        with self._changed:
            self._rules.append(_Rule(verb, path, times, action=action))

    def _rule(self, verb: str, path: str) -> _Rule | None:
        with self._changed:
            for rule in self._rules:
                if rule.verb == verb and rule.path == path and rule.times > 0:
                    rule.times -= 1
                    return rule
        return None

    # --- KubeClient's methods --------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> JSON:
        with self._changed:
            self.calls.append(Call(method, path, copy.deepcopy(body)))
        rule = self._rule(method, path)
        if rule is not None and rule.action is not None:
            rule.action()
        if rule is not None and rule.status:
            reason = "Conflict" if rule.status == 409 else "InternalError"
            raise KubeError(rule.status, reason, "injected by the test", f"{method} {path}")
        where = parse_path(path)
        with self._changed:
            if method == "GET":
                if where.name is None:
                    return self._list(where, dict(query or {}))
                return copy.deepcopy(self._stored(where, path))
            if method == "POST":
                return self._create(where, body, path)
            if method == "PUT":
                return self._write(where, path, body, replace=True)
            if method == "PATCH":
                return self._write(where, path, body, replace=False)
            if method == "DELETE":
                return self._delete(where, path)
        raise KubeError(405, "MethodNotAllowed", method, f"{method} {path}")

    def get(self, path: str, **query: Any) -> JSON:
        return self.request("GET", path, query=query)

    def find(self, path: str) -> JSON | None:
        try:
            return self.get(path)
        except KubeError as exc:
            if exc.not_found:
                return None
            raise

    def items(self, path: str, labels: Mapping[str, str] | None = None, **query: Any) -> list[JSON]:
        if labels:
            query["labelSelector"] = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        found: list[JSON] = self.get(path, **query).get("items") or []
        return found

    def create(self, path: str, body: JSON, **query: Any) -> JSON:
        return self.request("POST", path, query=query, body=body)

    def replace(self, path: str, body: JSON) -> JSON:
        return self.request("PUT", path, body=body)

    def patch(self, path: str, body: JSON, content_type: str = "") -> JSON:
        return self.request("PATCH", path, body=body, content_type=content_type)

    def merge_patch(self, path: str, body: JSON) -> JSON:
        return self.patch(path, body)

    def delete(
        self,
        path: str,
        *,
        propagation: str | None = "Background",
        options: JSON | None = None,
        missing_ok: bool = False,
    ) -> JSON:
        try:
            return self.request("DELETE", path)
        except KubeError as exc:
            if missing_ok and exc.not_found:
                return {}
            raise

    def watch(
        self, path: str, resource_version: str | None, timeout_seconds: int, **query: Any
    ) -> FakeWatch:
        with self._changed:
            self.calls.append(Call("WATCH", path))
        rule = self._rule("WATCH", path)
        if rule is not None and rule.status:
            raise KubeError(rule.status, "InternalError", "injected by the test", f"WATCH {path}")
        where = parse_path(path)
        with self._changed:
            if resource_version is not None and int(resource_version or 0) < self._compacted:
                gone = {"type": "ERROR", "object": {"code": 410, "reason": "Expired"}}
                return FakeWatch(self, where.collection, self._current, 0, [], gone)
            initial: list[JSON] = []
            if resource_version is None:  # the current objects first, as ADDED
                initial = copy.deepcopy(list(self.objects.get(where.collection, {}).values()))
                after = self._current
            else:
                after = int(resource_version or 0)
            watch = FakeWatch(self, where.collection, after, timeout_seconds, initial)
            self._watches.add(watch)
            return watch

    def compact(self) -> None:
        """Forget the history so far, as etcd's compaction does, and end every open watch
        (as an API server restart would): a watch resumed from an older version then answers
        410 Gone, and a watch cache lists again."""
        with self._changed:
            # Writes elsewhere move the revision on meanwhile: every version seen is now older.
            self._compacted = int(self._next_version())
            watches, self._watches = self._watches, set()
        for watch in watches:
            watch.close()

    read_data = KubeClient.read_data
    update_data = KubeClient.update_data

    def close(self) -> None:
        pass

    # --- for tests: the controllers' side of the API ---------------------------------------

    def write_status(self, path: str, status: JSON) -> JSON:
        """Set an object's status as its controller would (the Job controller, the kubelet),
        unconditionally; not counted as a request of the code under test."""
        where = parse_path(path)
        with self._changed:
            stored = self._stored(where, path)
            changed = {**stored, "status": copy.deepcopy(status)}
            return self._put(where, changed, "MODIFIED")

    def stored(self, path: str) -> JSON | None:
        """The object as stored now (a copy), without a request."""
        where = parse_path(path)
        with self._changed:
            found = self.objects.get(where.collection, {}).get(where.name or "")
            return copy.deepcopy(found) if found is not None else None

    def names(self, collection: str) -> list[str]:
        with self._changed:
            return sorted(self.objects.get(parse_path(collection).collection, {}))

    def writes(self, path: str) -> list[Call]:
        """The writes (PUT, PATCH) requested of ``path``, in order."""
        with self._changed:
            return [c for c in self.calls if c.path == path and c.verb in ("PUT", "PATCH")]

    # --- the store -------------------------------------------------------------------------

    def _stored(self, where: Where, path: str) -> JSON:
        found = self.objects.get(where.collection, {}).get(where.name or "")
        if found is None:
            raise KubeError(404, "NotFound", f'{where.plural} "{where.name}" not found', path)
        return found

    def _next_version(self) -> str:
        self._current = next(self._version)
        return str(self._current)

    def _put(self, where: Where, obj: JSON, kind: str) -> JSON:
        obj["metadata"]["resourceVersion"] = self._next_version()
        self.objects.setdefault(where.collection, {})[obj["metadata"]["name"]] = obj
        self.history.append(Event(where.collection, kind, copy.deepcopy(obj), self._current))
        self._changed.notify_all()
        return copy.deepcopy(obj)

    def _create(self, where: Where, body: JSON, path: str) -> JSON:
        obj = copy.deepcopy(body)
        metadata = obj.setdefault("metadata", {})
        name = metadata.get("name")
        if not name or where.name is not None:
            raise KubeError(422, "Invalid", "metadata.name is required", f"POST {path}")
        if name in self.objects.get(where.collection, {}):
            raise KubeError(409, "AlreadyExists", f'{where.plural} "{name}" already exists', path)
        metadata.update(
            namespace=where.namespace,
            uid=str(uuid.uuid4()),
            creationTimestamp=iso(utcnow()),
            generation=1,
        )
        if where.plural not in PLAIN_KINDS:
            obj.pop("status", None)
        return self._put(where, obj, "ADDED")

    def _write(self, where: Where, path: str, body: JSON, replace: bool) -> JSON:
        stored = self._stored(where, path)
        sent = (body.get("metadata") or {}).get("resourceVersion")
        if sent and sent != stored["metadata"]["resourceVersion"]:
            raise KubeError(
                409,
                "Conflict",
                "the object has been modified; please apply your changes to the latest version",
                path,
            )
        incoming = copy.deepcopy(body) if replace else merge(copy.deepcopy(stored), body)
        if where.subresource == "status":
            changed = {**copy.deepcopy(stored), "status": incoming.get("status")}
            if changed["status"] is None:
                changed.pop("status")
        elif where.subresource is None:
            changed = incoming
            metadata = {**(incoming.get("metadata") or {})}
            for kept in ("uid", "creationTimestamp", "generation", "namespace", "name"):
                metadata[kept] = stored["metadata"][kept]
            changed["metadata"] = metadata
            if where.plural not in PLAIN_KINDS:
                if "status" in stored:
                    changed["status"] = copy.deepcopy(stored["status"])
                else:
                    changed.pop("status", None)
            if changed.get("spec") != stored.get("spec"):
                metadata["generation"] = stored["metadata"]["generation"] + 1
        else:
            raise KubeError(404, "NotFound", f"no subresource {where.subresource}", path)
        return self._put(where, changed, "MODIFIED")

    def _delete(self, where: Where, path: str) -> JSON:
        stored = self._stored(where, path)
        del self.objects[where.collection][where.name or ""]
        gone = copy.deepcopy(stored)
        gone["metadata"]["resourceVersion"] = self._next_version()
        self.history.append(Event(where.collection, "DELETED", copy.deepcopy(gone), self._current))
        self._changed.notify_all()
        return {"kind": "Status", "status": "Success", "details": {"name": where.name}}

    def _list(self, where: Where, query: dict[str, Any]) -> JSON:
        selected = [
            obj
            for name, obj in sorted(self.objects.get(where.collection, {}).items())
            if labels_match(obj, query.get("labelSelector"))
            and fields_match(obj, query.get("fieldSelector"))
        ]
        start = int(query.get("continue") or 0)
        limit = int(query.get("limit") or 0)
        end = start + limit if limit else len(selected)
        metadata: JSON = {"resourceVersion": str(self._current)}
        if end < len(selected):
            metadata["continue"] = str(end)
        return {
            "kind": "List",
            "metadata": metadata,
            "items": copy.deepcopy(selected[start:end]),
        }

    def _wait_events(self, collection: str, after: int, timeout: float) -> list[Event]:
        with self._changed:
            found = [e for e in self.history if e.collection == collection and e.version > after]
            if not found:
                self._changed.wait(timeout)
                found = [
                    e for e in self.history if e.collection == collection and e.version > after
                ]
            return found


class SigningLocalStore(LocalStore):
    """A local directory store that also signs URLs, standing in for S3 where the code under
    test only hands URLs on (runner manifests): its URLs name the key, method and expiry and
    are never fetched in process."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)

    def presign(self, method: Method, key: str, expires_at: datetime) -> str:
        return f"{self.path(key).as_uri()}?method={method}&expires={iso(expires_at)}"
