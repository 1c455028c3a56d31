"""Which URLs a tenant may have us request, and the one address a request connects to.

A webhook URL or a document's ``source_url`` is chosen by a tenant, so every request we send
to it is a request a tenant made us send from inside our network (SSRF). Hence: only
http(s), no private or special addresses unless configured, the name resolved once and every
answer checked, the connection made to the checked address (DNS rebinding cannot move it),
and no redirect followed unchecked (webhook deliveries follow none; a fetch checks each hop:
:mod:`docjobs.net.fetch`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx

from docjobs.net.addresses import HOST_NAME, network

MAX_URL_LENGTH = 2048


class TargetRules(Protocol):
    """The installation's exceptions to the address rules (the webhook settings hold them,
    and fetches of ``source_url`` obey the same)."""

    @property
    def allow_private_targets(self) -> bool: ...

    @property
    def allowed_hosts(self) -> Sequence[str]: ...


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
"""(host, port) -> IP addresses as strings; raises OSError when the name does not resolve."""


class UnsafeTarget(ValueError):
    """The URL must not be requested: bad form, or a host or address that is not allowed."""


@dataclass(frozen=True)
class PinnedTarget:
    """A checked URL and the one address every try of a delivery connects to."""

    url: str
    host: str
    ip: str
    port: int
    scheme: str

    def request_url(self) -> httpx.URL:
        """The URL with the pinned address in place of the name."""
        return httpx.URL(self.url).copy_with(host=self.ip, port=self.port)

    def host_header(self) -> str:
        return httpx.URL(self.url).netloc.decode("ascii")


def system_resolver(host: str, port: int) -> list[str]:
    # AI_ADDRCONFIG: no AAAA answers on a host without IPv6, whose pinned address would only
    # ever fail to connect.
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public_address(ip: IPAddress) -> bool:
    """Globally routable unicast, and so is any IPv4 address embedded in an IPv6 one."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not is_public_address(embedded):
            return False
        if ip.is_site_local:
            return False
    # is_global alone misses multicast, and its tables differ between Python releases.
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or ip in _CGNAT
    )


def check_url(url: str, settings: TargetRules) -> None:
    """Registration-time check: form, and the host if it is an IP literal or a loopback name.

    Other names are checked when delivering, on what they resolve to then.
    """
    _, host, _, literal = _parse(url)
    _check_host(host, literal, settings)


def resolve_target(
    url: str, settings: TargetRules, resolver: Resolver = system_resolver
) -> PinnedTarget:
    """Check ``url``, resolve its host once, check every address, pin the first allowed one.

    Raises UnsafeTarget (final) or OSError when the name does not resolve (worth a retry).
    """
    parsed, host, port, literal = _parse(url)
    _check_host(host, literal, settings)
    if literal is not None:
        return PinnedTarget(url, host, str(literal), port, parsed.scheme)
    refused = []
    for answer in resolver(host, port):
        try:
            ip = ipaddress.ip_address(answer.split("%", 1)[0])
            _check_address(ip, host, settings)
        except ValueError:  # UnsafeTarget included
            refused.append(answer)
            continue
        return PinnedTarget(url, host, str(ip), port, parsed.scheme)
    if not refused:
        raise OSError(f"{host} has no addresses")
    raise UnsafeTarget(
        f"{host} resolves only to addresses not allowed: {', '.join(refused)}"
        + PRIVATE_TARGETS_HINT
    )


PRIVATE_TARGETS_HINT = (
    "; to deliver to or fetch from private or loopback addresses (a server on this machine,"
    " say), set"
    " DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS=true or list the host in"
    " DOCJOBS_WEBHOOKS__ALLOWED_HOSTS"
)
"""Said with every refusal of a private target: the setting is what a local trial needs."""

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _host_allowed(host: str, settings: TargetRules) -> bool:
    return settings.allow_private_targets or host in settings.allowed_hosts


def _check_host(host: str, literal: IPAddress | None, settings: TargetRules) -> None:
    if literal is not None:
        _check_address(literal, host, settings)
    elif (host == "localhost" or host.endswith(".localhost")) and not _host_allowed(host, settings):
        raise UnsafeTarget(f"{host} is a loopback name{PRIVATE_TARGETS_HINT}")


def _check_address(ip: IPAddress, host: str, settings: TargetRules) -> None:
    if _host_allowed(host, settings) or is_public_address(ip):
        return
    networks = [net for net in map(network, settings.allowed_hosts) if net is not None]
    if not any(ip in net for net in networks):
        raise UnsafeTarget(f"{ip} is not a public address{PRIVATE_TARGETS_HINT}")


def _parse(url: str) -> tuple[httpx.URL, str, int, IPAddress | None]:
    """The URL, its lower-case ASCII host, its port, and the host as an address if it is one."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeTarget(f"URL longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UnsafeTarget(f"invalid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise UnsafeTarget("scheme must be http or https")
    if parsed.userinfo:
        raise UnsafeTarget("credentials in the URL are not allowed")
    host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    if not host:
        raise UnsafeTarget("URL has no host")
    port = parsed.port if parsed.port is not None else (443 if parsed.scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise UnsafeTarget(f"port {port} out of range")
    try:
        return parsed, host, port, ipaddress.ip_address(host)
    except ValueError:
        pass
    if not HOST_NAME.fullmatch(host) or len(host) > 253:
        raise UnsafeTarget(f"invalid host {host!r}")
    try:
        # "127.1", "2130706433", "0x7f.1": getaddrinfo reads these as IPv4, so must we.
        return parsed, host, port, ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return parsed, host, port, None
