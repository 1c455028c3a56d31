"""Host names and networks as settings name them: free of HTTP clients, so settings can."""

from __future__ import annotations

import ipaddress
import re

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

HOST_NAME = re.compile(
    r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*"
)


def network(entry: str) -> IPNetwork | None:
    """``entry`` as an IP network (CIDR, or one address), or None if it is not one."""
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None
