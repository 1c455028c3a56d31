"""Which webhook targets may be requested: the rules every URL a tenant chooses obeys
(:mod:`docjobs.net.targets`), named here for the webhook code that checks them."""

from __future__ import annotations

from docjobs.net.targets import (
    MAX_URL_LENGTH,
    PRIVATE_TARGETS_HINT,
    PinnedTarget,
    Resolver,
    UnsafeTarget,
    check_url,
    is_public_address,
    resolve_target,
    system_resolver,
)

__all__ = [
    "MAX_URL_LENGTH",
    "PRIVATE_TARGETS_HINT",
    "PinnedTarget",
    "Resolver",
    "UnsafeTarget",
    "check_url",
    "is_public_address",
    "resolve_target",
    "system_resolver",
]
