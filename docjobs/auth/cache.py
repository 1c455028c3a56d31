"""Keys verified a moment ago, remembered briefly so that a poller's every request does not
read the key store.

Only keys that verified are kept, under the SHA-256 of the key (never the key itself), for
``ttl`` seconds: a revoked key (``docjobs keys revoke`` runs in its own process, and other
replicas share the key store) stops working within ``ttl`` seconds. A key created a moment
ago works at once, as refusals are never kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from docjobs.auth.keys import Principal, hash_key


class VerifiedKeyCache:
    def __init__(
        self,
        ttl: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, presented: str) -> Principal | None:
        """The principal of ``presented`` if it verified less than ``ttl`` seconds ago."""
        if self.ttl <= 0:
            return None
        digest = hash_key(presented)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            self._entries.pop(digest, None)
            return None
        return entry[1]

    def put(self, presented: str, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        now = self._clock()
        if len(self._entries) >= self.max_entries:
            self._entries = {d: e for d, e in self._entries.items() if e[0] > now}
            while len(self._entries) >= self.max_entries:  # all still fresh: drop the oldest
                self._entries.pop(next(iter(self._entries)))
        self._entries[hash_key(presented)] = (now + self.ttl, principal)
