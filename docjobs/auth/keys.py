"""API keys: each belongs to one tenant and one plan, and is stored only as a hash.

A key reads ``dj_<id>_<secret>``. The id finds the row; the secret is never stored, only the
SHA-256 of the whole key, compared in constant time. Keys carry 192 random bits, so a fast
hash is enough: there is nothing to brute-force that a slow hash would protect.

A key's plan is one of the plans the settings give rates for (``DOCJOBS_RATE_LIMITS__PLANS``);
key stores are given those names and refuse others.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from docjobs.domain.models import TENANT_PATTERN

KEY_FORMAT = re.compile(r"^dj_([0-9a-f]{12})_([A-Za-z0-9_-]{32})$")
_DUMMY_HASH = hashlib.sha256(b"docjobs-no-such-key").hexdigest()


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    tenant: str
    plan: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant every job and template is scoped to."""

    tenant: str
    plan: str
    key_id: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its id."""
    key_id = secrets.token_hex(6)
    return f"dj_{key_id}_{secrets.token_urlsafe(24)}", key_id


class KeyStore(Protocol):
    def create(self, tenant: str, plan: str) -> tuple[str, ApiKey]: ...

    def authenticate(self, presented: str) -> Principal | None: ...

    def list_keys(self) -> list[ApiKey]: ...

    def revoke(self, key_id: str) -> bool: ...


def check_tenant(tenant: str) -> str:
    if not re.fullmatch(TENANT_PATTERN, tenant):
        raise ValueError("tenant must be 1-63 lowercase letters, digits or '-'")
    return tenant


def check_plan(plan: str, plans: Collection[str]) -> str:
    """``plan`` if it is one of ``plans``, the configured ones."""
    if plan not in plans:
        raise ValueError(
            f"unknown plan {plan!r}: the plans DOCJOBS_RATE_LIMITS__PLANS defines are"
            f" {', '.join(plans)}"
        )
    return plan


def verify(presented: str, stored_hash: str | None) -> bool:
    """Constant-time comparison; an unknown id still costs one comparison."""
    return hmac.compare_digest(hash_key(presented), stored_hash or _DUMMY_HASH) and (
        stored_hash is not None
    )
