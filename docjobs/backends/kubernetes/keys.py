"""API keys in a Secret of the namespace: one data entry per key id, holding JSON
``{hash, tenant, plan, created_at, revoked_at}``. The key itself is never stored.

The API authenticates every request against a watch cache of that one Secret, so a request
costs no API-server call and a revocation takes effect as soon as the watch delivers it. A
key id the cache does not know yet (a key created a moment ago) is looked up directly, at
most once per ``MISS_REFRESH_SECONDS``, so floods of made-up keys cannot flood the API server.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from docjobs.auth.keys import ApiKey, Principal, check_plan, check_tenant, hash_key, new_key, verify
from docjobs.kube.cache import WatchCache
from docjobs.kube.client import KubeClient, KubeError, data_of
from docjobs.kube.paths import core_path

MISS_REFRESH_SECONDS = 1.0


@dataclass(frozen=True)
class _Record:
    key: ApiKey
    hash: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "hash": self.hash,
                "tenant": self.key.tenant,
                "plan": self.key.plan,
                "created_at": self.key.created_at.isoformat(),
                "revoked_at": self.key.revoked_at.isoformat() if self.key.revoked_at else None,
            }
        )

    @classmethod
    def from_json(cls, key_id: str, text: str) -> _Record:
        raw = json.loads(text)
        revoked = raw.get("revoked_at")
        key = ApiKey(
            key_id,
            raw["tenant"],
            raw["plan"],
            datetime.fromisoformat(raw["created_at"]),
            datetime.fromisoformat(revoked) if revoked else None,
        )
        return cls(key, raw["hash"])


Records = dict[str, _Record]


def _records(data: dict[str, str]) -> Records:
    return {key_id: _Record.from_json(key_id, text) for key_id, text in data.items()}


def _key_id(presented: str) -> str | None:
    """The id part of ``dj_<id>_<secret>`` (the secret may itself contain ``_``)."""
    parts = presented.split("_", 2)
    return parts[1] if len(parts) == 3 and parts[0] == "dj" else None


class SecretKeyStore:
    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        secret: str = "docjobs-api-keys",  # noqa: S107 - the Secret's name
        watch_timeout_seconds: int = 300,
        *,
        plans: Collection[str],
    ) -> None:
        self.client = client
        self.plans = plans
        """The plans a new key may have: those the settings give rates for."""
        self.namespace = namespace
        self.secret = secret
        self.watch_timeout_seconds = watch_timeout_seconds
        self._cache: WatchCache[Records] | None = None
        self._miss_lock = threading.Lock()
        self._last_miss_read = 0.0

    # --- the server's cache ----------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._cache = WatchCache(
            self.client,
            core_path(self.namespace, "secrets"),
            lambda secret: _records(data_of("secrets", secret)),
            field_selector=f"metadata.name={self.secret}",
            watch_timeout_seconds=self.watch_timeout_seconds,
            name="keys-cache",
        )
        self._cache.start(loop)

    def stop(self) -> None:
        if self._cache is not None:
            self._cache.stop()

    @property
    def cache(self) -> WatchCache[Records] | None:
        return self._cache

    # --- KeyStore --------------------------------------------------------------------------

    def create(self, tenant: str, plan: str = "free") -> tuple[str, ApiKey]:
        key, key_id = new_key()
        record = _Record(
            ApiKey(key_id, check_tenant(tenant), check_plan(plan, self.plans), datetime.now(UTC)),
            hash_key(key),
        )

        def add(data: dict[str, str]) -> None:
            data[key_id] = record.to_json()

        self.client.update_data(self.namespace, "secrets", self.secret, add)
        return key, record.key

    def authenticate(self, presented: str) -> Principal | None:
        key_id = _key_id(presented)
        record = self._known().get(key_id) if key_id else None
        if record is None and key_id and self._may_read_on_miss():
            record = self._read_fresh().get(key_id)
        active = record is not None and record.key.revoked_at is None
        # verify() compares even without a stored hash: unknown ids take as long as known ones.
        if not verify(presented, record.hash if record is not None and active else None):
            return None
        assert record is not None
        return Principal(record.key.tenant, record.key.plan, record.key.key_id)

    def list_keys(self) -> list[ApiKey]:
        return sorted((r.key for r in self._read_fresh().values()), key=lambda k: k.created_at)

    def revoke(self, key_id: str) -> bool:
        def mark(data: dict[str, str]) -> bool:
            if key_id not in data:
                return False
            record = _Record.from_json(key_id, data[key_id])
            if record.key.revoked_at is not None:
                return False
            revoked = replace(record.key, revoked_at=datetime.now(UTC))
            data[key_id] = _Record(revoked, record.hash).to_json()
            return True

        return self.client.update_data(self.namespace, "secrets", self.secret, mark)

    # --- reading ---------------------------------------------------------------------------

    def _known(self) -> Records:
        if self._cache is None:  # a command, not the server: read directly
            return self._read_fresh()
        return self._cache.get(self.secret) or {}

    def _read_fresh(self) -> Records:
        try:
            secret = self.client.get(core_path(self.namespace, "secrets", self.secret))
        except KubeError as exc:
            if exc.not_found:
                return {}
            raise
        if self._cache is not None:
            self._cache.observe(secret)
        return _records(data_of("secrets", secret))

    def _may_read_on_miss(self) -> bool:
        if self._cache is None:
            return False  # _known() has just read
        with self._miss_lock:
            now = time.monotonic()
            if now - self._last_miss_read < MISS_REFRESH_SECONDS:
                return False
            self._last_miss_read = now
            return True
