"""A watch cache: one collection of one namespace, kept current by list + watch in a thread.

Reads (``get``, ``values``) never call the API server: that is what lets clients poll a job
as often as they like. The thread lists once, then watches from the list's resourceVersion
with bookmarks, resumes each ended watch from the last version it saw, and lists again only
when the server answers 410 Gone (the version is older than etcd's compaction window).
Async code awaits one object's next change through ``subscribe``. An optional index (one key
per object, e.g. a submission's fingerprint) finds the objects sharing a key without a scan;
optional groups (one group and a sort key per object, e.g. a tenant and a creation time) keep
each group's objects in order, so that a page of one group is read without a scan of all.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from .client import JSON, KubeClient, KubeError, WatchStream

T = TypeVar("T")
SortKey = tuple[float, str]
"""An object's place in its group: groups are kept in ascending order of it."""
log = logging.getLogger("docjobs.kube")

LIST_PAGE = 500
"""Objects per list request: bounds the API server's memory for one answer."""
MAX_BACKOFF = 30.0
"""Seconds; the longest pause between attempts while the API server cannot be reached."""


class _Expired(Exception):
    """The resourceVersion we continue from is gone; only a fresh list helps."""


class WatchCache(Generic[T]):
    def __init__(
        self,
        client: KubeClient,
        path: str,
        parse: Callable[[JSON], T | None],
        *,
        field_selector: str | None = None,
        watch_timeout_seconds: int = 300,
        name: str = "watch-cache",
        index: Callable[[T], Hashable] | None = None,
        group: Callable[[T], tuple[Hashable, SortKey]] | None = None,
        dropped: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.path = path
        self.parse = parse
        self.field_selector = field_selector
        self.watch_timeout_seconds = watch_timeout_seconds
        self.name = name
        self.last_error = ""
        self._items: dict[str, tuple[str, T]] = {}
        """metadata.name -> (resourceVersion, parsed object)."""
        self._key = index
        self._index: dict[Hashable, set[str]] = {}
        """index key -> names of the cached objects with that key (only with ``index``, which
        must accept every parsed object: it runs on the watch thread)."""
        self._group_of = group
        self._dropped = dropped
        """Told the name of every object the cache lets go (deleted, being deleted, gone at a
        relist), on the thread that lets it go, so whoever keeps something per object (beside
        the parsed value) can let go of it too."""
        self._groups: dict[Hashable, list[tuple[SortKey, str]]] = {}
        """group -> (sort key, name) of its cached objects, ascending (only with ``group``)."""
        self._lock = threading.Lock()
        self._healthy = threading.Event()
        self._stopping = threading.Event()
        self._stream: WatchStream | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[str, set[asyncio.Event]] = {}

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start the thread; ``loop`` is where ``subscribe``'s events are set."""
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def ready(self) -> bool:
        """Listed, and the last list or watch request succeeded."""
        return self._healthy.is_set()

    def wait_ready(self, timeout: float) -> bool:
        return self._healthy.wait(timeout)

    # --- reads -----------------------------------------------------------------------------

    def get(self, name: str) -> T | None:
        with self._lock:
            item = self._items.get(name)
        return item[1] if item else None

    def values(self) -> list[T]:
        with self._lock:
            return [value for _, value in self._items.values()]

    def indexed(self, key: Hashable) -> list[T]:
        """The cached objects whose index key is ``key``, in no particular order."""
        with self._lock:
            names = self._index.get(key, ())
            return [self._items[name][1] for name in names]

    def page(
        self,
        group: Hashable,
        before: SortKey | None,
        accept: Callable[[T], bool],
        limit: int,
    ) -> tuple[list[T], int, bool]:
        """Up to ``limit`` of the group's objects that ``accept`` takes, from the last before
        ``before`` (None: from the last) downwards; how many of the whole group it takes;
        whether more it takes follow the page."""
        with self._lock:
            entries = self._groups.get(group, [])
            end = len(entries) if before is None else bisect.bisect_left(entries, (before, ""))
            taken: list[T] = []
            total = 0
            more = False
            for position in range(len(entries) - 1, -1, -1):
                value = self._items[entries[position][1]][1]
                if not accept(value):
                    continue
                total += 1
                if position < end:
                    if len(taken) < limit:
                        taken.append(value)
                    else:
                        more = True
            return taken, total, more

    def forget(self, name: str) -> None:
        """Drop an object its writer just deleted, before the watch says so."""
        with self._lock:
            self._put(name, None)
        self._drop({name})
        self._notify({name})

    def observe(self, resource: JSON) -> T | None:
        """Take in an object a write just returned, so the writer reads its own write before
        the watch delivers it. A version the cache already has a newer one of is ignored."""
        metadata = resource["metadata"]
        name, version = metadata["name"], metadata.get("resourceVersion", "")
        with self._lock:
            known = self._items.get(name)
            if known is not None and not _newer(version, known[0]):
                return known[1]
        self._store(resource)
        return self.get(name)

    @contextmanager
    def subscribe(self, name: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``name`` changes (or the cache relists); call on the loop
        given to ``start``. Subscribe before reading, so no change falls in between."""
        event = asyncio.Event()
        with self._lock:
            self._waiters.setdefault(name, set()).add(event)
        try:
            yield event
        finally:
            with self._lock:
                waiters = self._waiters.get(name, set())
                waiters.discard(event)
                if not waiters:
                    self._waiters.pop(name, None)

    # --- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        version: str | None = None
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                if version is None:
                    version = self._relist()
                version = self._watch(version)
                backoff = 0.5
            except _Expired:
                log.info("%s: resourceVersion expired, listing again", self.name)
                version = None
            except Exception as exc:  # the thread must outlive any one failure
                if self._stopping.is_set():
                    break
                self._healthy.clear()
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("%s: %s; retrying in %.1f s", self.name, self.last_error, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _relist(self) -> str:
        items: dict[str, JSON] = {}
        token: str | None = None
        while True:
            try:
                page = self.client.get(
                    self.path,
                    limit=LIST_PAGE,
                    fieldSelector=self.field_selector,
                    **{"continue": token},
                )
            except KubeError as exc:
                if exc.gone:  # the continue token expired: start over
                    raise _Expired from None
                raise
            items.update((o["metadata"]["name"], o) for o in page.get("items", []))
            token = page["metadata"].get("continue")
            if not token:
                break
        parsed = {
            name: (resource["metadata"].get("resourceVersion", ""), value)
            for name, resource in items.items()
            if (value := self._parse(resource)) is not None
        }
        index: dict[Hashable, set[str]] = {}
        if self._key is not None:
            for name, (_, value) in parsed.items():
                index.setdefault(self._key(value), set()).add(name)
        groups: dict[Hashable, list[tuple[SortKey, str]]] = {}
        if self._group_of is not None:
            for name, (_, value) in parsed.items():
                group, sort_key = self._group_of(value)
                groups.setdefault(group, []).append((sort_key, name))
            for entries in groups.values():
                entries.sort()
        with self._lock:
            gone = self._items.keys() - parsed.keys()
            self._items, self._index, self._groups = parsed, index, groups
        self._drop(gone)
        self._healthy.set()
        self._notify(None)
        version: str = page["metadata"]["resourceVersion"]
        return version

    def _watch(self, version: str) -> str:
        try:
            stream = self.client.watch(
                self.path,
                version,
                self.watch_timeout_seconds,
                fieldSelector=self.field_selector,
            )
        except KubeError as exc:
            if exc.gone:
                raise _Expired from None
            raise
        with self._lock:
            self._stream = stream
        self._healthy.set()
        try:
            for event in stream:
                version = self._apply(event, version)
        finally:
            with self._lock:
                self._stream = None
            stream.close()
        return version

    def _apply(self, event: JSON, version: str) -> str:
        kind, resource = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if resource.get("code") == 410:
                raise _Expired
            raise KubeError(
                int(resource.get("code", 500)), resource.get("reason", ""), str(resource)
            )
        new_version: str = resource["metadata"]["resourceVersion"]
        if kind in ("ADDED", "MODIFIED"):
            self._store(resource)
        elif kind == "DELETED":
            name = resource["metadata"]["name"]
            with self._lock:
                self._put(name, None)
            self._drop({name})
            self._notify({name})
        return new_version  # BOOKMARK: only this

    def _store(self, resource: JSON) -> None:
        name = resource["metadata"]["name"]
        value = self._parse(resource)
        entry = None if value is None else (resource["metadata"].get("resourceVersion", ""), value)
        with self._lock:
            self._put(name, entry)
        if entry is None:
            self._drop({name})
        self._notify({name})

    def _put(self, name: str, entry: tuple[str, T] | None) -> None:
        """Replace (None: drop) one object, its index and group entries with it; call holding
        the lock."""
        old = self._items.pop(name, None)
        if self._key is not None and old is not None:
            key = self._key(old[1])
            names = self._index.get(key, set())
            names.discard(name)
            if not names:
                self._index.pop(key, None)
        if self._group_of is not None and old is not None:
            group, sort_key = self._group_of(old[1])
            entries = self._groups.get(group, [])
            at = bisect.bisect_left(entries, (sort_key, name))
            if at < len(entries) and entries[at] == (sort_key, name):
                del entries[at]
            if not entries:
                self._groups.pop(group, None)
        if entry is None:
            return
        self._items[name] = entry
        if self._key is not None:
            self._index.setdefault(self._key(entry[1]), set()).add(name)
        if self._group_of is not None:
            group, sort_key = self._group_of(entry[1])
            bisect.insort(self._groups.setdefault(group, []), (sort_key, name))

    def _parse(self, resource: JSON) -> T | None:
        try:
            return self.parse(resource)
        except Exception as exc:  # one malformed object must not stop the cache
            log.warning("%s: ignoring %s: %s", self.name, resource["metadata"].get("name"), exc)
            return None

    def _drop(self, names: Iterable[str]) -> None:
        if self._dropped is not None:
            for name in names:
                self._dropped(name)

    def _notify(self, names: set[str] | None) -> None:
        """Wake the subscribers of ``names`` (all of them for None)."""
        with self._lock:
            if names is None:
                events = [e for waiters in self._waiters.values() for e in waiters]
            else:
                events = [e for n in names for e in self._waiters.get(n, ())]
        loop = self._loop
        if not events or loop is None:
            return
        for event in events:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop closed during shutdown
                return


def _newer(version: str, than: str) -> bool:
    """Whether ``version`` is newer. resourceVersions are opaque; in practice they are etcd
    revisions, and where they are not numbers we keep what we have."""
    if version.isdigit() and than.isdigit():
        return int(version) > int(than)
    return False
