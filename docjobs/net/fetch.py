"""Fetching a document from a URL a tenant gave: every hop checked by the address rules,
connected to the address checked, within a size and a time limit.

Runs in a thread (blocking I/O throughout): the API offloads it whole.
"""

from __future__ import annotations

import hashlib
import ipaddress
import ssl
import time
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO
from urllib.parse import unquote

import httpx

from docjobs.net.addresses import network
from docjobs.net.targets import (
    PRIVATE_TARGETS_HINT,
    PinnedTarget,
    Resolver,
    TargetRules,
    UnsafeTarget,
    resolve_target,
    system_resolver,
)

REDIRECTS = (301, 302, 303, 307, 308)


class FetchError(Exception):
    """The document could not be fetched; ``code`` names why, the message says it in words."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int
    seconds: float
    """The whole fetch, redirects included; also each connect and read."""
    max_redirects: int = 5


@dataclass(frozen=True)
class Fetched:
    size: int
    sha256: str
    file_name: str
    content_type: str | None


def fetch(
    url: str,
    rules: TargetRules,
    limits: FetchLimits,
    sink: IO[bytes],
    *,
    resolver: Resolver = system_resolver,
    ssl_context: ssl.SSLContext | None = None,
) -> Fetched:
    """Writes the body at ``url`` to ``sink``; raises :class:`FetchError` for a URL the rules
    refuse (at any hop), a body over ``limits.max_bytes``, or one not in by the deadline."""
    deadline = time.monotonic() + limits.seconds
    # trust_env=False: an environment proxy would connect to the name, not the checked address.
    with httpx.Client(
        timeout=limits.seconds,
        follow_redirects=False,
        trust_env=False,
        verify=ssl_context if ssl_context is not None else True,
    ) as client:
        for _ in range(limits.max_redirects + 1):
            target = _checked(url, rules, resolver)
            try:
                with client.stream(
                    "GET",
                    target.request_url(),
                    headers={"host": target.host_header(), "accept-encoding": "identity"},
                    extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
                ) as response:
                    if response.status_code in REDIRECTS and "location" in response.headers:
                        url = str(httpx.URL(url).join(response.headers["location"]))
                        continue
                    if response.status_code != 200:
                        raise FetchError(
                            422,
                            "source_unavailable",
                            f"The source URL answered HTTP {response.status_code}.",
                        )
                    return _read(url, response, limits, deadline, sink)
            except httpx.TimeoutException:
                raise _timed_out(limits) from None
            except httpx.HTTPError as exc:
                raise FetchError(
                    422, "source_unavailable", f"The source URL could not be read: {exc}"
                ) from None
    raise FetchError(
        422,
        "source_unavailable",
        f"The source URL redirects more than {limits.max_redirects} times.",
    )


def _checked(url: str, rules: TargetRules, resolver: Resolver) -> PinnedTarget:
    try:
        target = resolve_target(url, rules, resolver)
    except UnsafeTarget as exc:
        raise FetchError(422, "unsafe_source_url", f"The source URL is refused: {exc}.") from None
    except OSError as exc:
        raise FetchError(
            422, "source_unavailable", f"The source URL's host does not resolve: {exc}."
        ) from None
    if target.scheme != "https" and not _excepted(target, rules):
        raise FetchError(
            422,
            "unsafe_source_url",
            f"The source URL is refused: only https is fetched{PRIVATE_TARGETS_HINT}.",
        )
    return target


def _excepted(target: PinnedTarget, rules: TargetRules) -> bool:
    """Whether the rules make an exception for the target (plain http is allowed there)."""
    if rules.allow_private_targets or target.host in rules.allowed_hosts:
        return True
    ip = ipaddress.ip_address(target.ip)
    networks = (net for net in map(network, rules.allowed_hosts) if net is not None)
    return any(ip in net for net in networks)


def _read(
    url: str, response: httpx.Response, limits: FetchLimits, deadline: float, sink: IO[bytes]
) -> Fetched:
    too_large = FetchError(
        413,
        "payload_too_large",
        f"The source document exceeds the {limits.max_bytes / (1024 * 1024):g} MB limit.",
    )
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise too_large
    digest = hashlib.sha256()
    size = 0
    for chunk in response.iter_raw(1 << 20):
        size += len(chunk)
        if size > limits.max_bytes:
            raise too_large
        if time.monotonic() > deadline:
            raise _timed_out(limits)
        digest.update(chunk)
        sink.write(chunk)
    content_type = response.headers.get("content-type")
    return Fetched(
        size,
        digest.hexdigest(),
        _file_name(url),
        content_type.split(";")[0].strip() if content_type else None,
    )


def _file_name(url: str) -> str:
    name = PurePosixPath(unquote(httpx.URL(url).path)).name
    return name or "document"


def _timed_out(limits: FetchLimits) -> FetchError:
    return FetchError(
        422, "source_timeout", f"The source URL was not read within {limits.seconds:g} seconds."
    )
