"""Webhook delivery: refuse unsafe targets, sign per Standard Webhooks, retry with backoff.

A webhook URL is chosen by a tenant, so every request we send to it is a request a tenant
made us send from inside our network (SSRF). Hence: only http(s), no private or special
addresses unless configured, the name resolved once and every answer checked, the connection
made to the checked address (DNS rebinding cannot move it), and redirects never followed.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import json
import secrets
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic_core import to_jsonable_python
from standardwebhooks.webhooks import Webhook

from docjobs.domain.clock import iso
from docjobs.webhooks.policy import HOST_NAME, WebhookSettings, network

EVENT_TYPES = ("job.completed", "job.failed", "job.cancelled")
"""One per terminal phase; ``docjobs.events.EVENT_OF_PHASE`` maps phases to them."""
RETRYABLE_4XX = frozenset({408, 409, 425, 429})
"""Client errors that may succeed later: timeout, conflict, too early, rate limited.

Any other 4xx (and any 3xx) is final: the receiver understood the request and refused it
(bad URL, auth, gone, ...), and the same bytes will be refused again.
"""
MAX_URL_LENGTH = 2048
USER_AGENT = "docjobs-webhooks/1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
"""(host, port) -> IP addresses as strings; raises OSError when the name does not resolve."""
Sleep = Callable[[float], None]
AttemptHook = Callable[["DeliveryAttempt", float | None], None]
"""(the try, seconds until the next one or None when it was the last)"""


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


@dataclass(frozen=True)
class WebhookMessage:
    """One event for one target: what :func:`deliver` signs and sends until it lands."""

    url: str
    secret: str
    """The target's signing secret (``whsec_...``)."""
    event_type: str
    data: Mapping[str, Any]
    msg_id: str | None = None
    """The ``webhook-id``, from :func:`message_id`; a random one when absent."""
    occurred_at: datetime | None = None
    """When the event happened (the job ended); now when absent."""


@dataclass(frozen=True)
class DeliveryAttempt:
    at: datetime
    status_code: int | None
    """The receiver's answer; None when there was none (network error, unsafe target)."""
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def outcome(self) -> str:
        """The answer in words, for logs: ``HTTP 500`` or the error that stood for one."""
        if self.status_code is not None:
            return f"HTTP {self.status_code}"
        return self.error or "no answer"


# --- secrets, ids and payloads --------------------------------------------------------------


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def message_id(job_id: str, target: str, event_type: str) -> str:
    """The ``webhook-id``: the same for every retry (and re-send) of one event to one target,
    so receivers can drop duplicates."""
    digest = hashlib.sha256(f"{job_id}\0{target}\0{event_type}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def event_body(event_type: str, data: Mapping[str, Any], occurred_at: datetime) -> str:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"event type must be one of {', '.join(EVENT_TYPES)}")
    payload = {"type": event_type, "timestamp": iso(occurred_at), "data": data}
    return json.dumps(payload, separators=(",", ":"), default=to_jsonable_python)


# --- target safety --------------------------------------------------------------------------


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


def check_url(url: str, settings: WebhookSettings) -> None:
    """Registration-time check: form, and the host if it is an IP literal or a loopback name.

    Other names are checked when delivering, on what they resolve to then.
    """
    _, host, _, literal = _parse(url)
    _check_host(host, literal, settings)


def resolve_target(
    url: str, settings: WebhookSettings, resolver: Resolver = system_resolver
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
    "; to deliver to private or loopback addresses (a receiver on this machine, say), set"
    " DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS=true or list the host in"
    " DOCJOBS_WEBHOOKS__ALLOWED_HOSTS"
)
"""Said with every refusal of a private target: the setting is what a local trial needs."""

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _host_allowed(host: str, settings: WebhookSettings) -> bool:
    return settings.allow_private_targets or host in settings.allowed_hosts


def _check_host(host: str, literal: IPAddress | None, settings: WebhookSettings) -> None:
    if literal is not None:
        _check_address(literal, host, settings)
    elif (host == "localhost" or host.endswith(".localhost")) and not _host_allowed(host, settings):
        raise UnsafeTarget(f"{host} is a loopback name{PRIVATE_TARGETS_HINT}")


def _check_address(ip: IPAddress, host: str, settings: WebhookSettings) -> None:
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


# --- delivery -------------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_seconds(
    settings: WebhookSettings, failed_tries: int, retry_after: float | None
) -> float:
    """Wait after ``failed_tries`` failures: doubling from the initial backoff, capped; never
    less than the receiver's (capped) ``Retry-After``."""
    delay = min(
        settings.initial_backoff_seconds * 2.0 ** (failed_tries - 1), settings.max_backoff_seconds
    )
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.max_retry_after_seconds))
    return delay


def is_retryable(status_code: int) -> bool:
    return status_code >= 500 or status_code in RETRYABLE_4XX


class DeliveryTries:
    """The tries of one message to one target, made one call of :meth:`next` at a time, so
    the caller chooses how to wait between them: :func:`deliver` sleeps, a delivery queue
    schedules the next try and frees its thread meanwhile.

    The host is resolved and checked once, when a try first gets an answer (a DNS failure is
    retried at the next try), so every try goes to the one checked address.
    """

    def __init__(
        self,
        message: WebhookMessage,
        settings: WebhookSettings,
        *,
        resolver: Resolver = system_resolver,
        ssl_context: ssl.SSLContext | None = None,
        tried: int = 0,
    ) -> None:
        self.settings = settings
        self.ssl_context = ssl_context
        self.tried = tried
        self.body = event_body(
            message.event_type, message.data, message.occurred_at or datetime.now(UTC)
        )
        self.msg_id = message.msg_id or f"msg_{secrets.token_hex(16)}"
        self.signer = Webhook(message.secret)
        self.pinned = functools.cache(lambda: resolve_target(message.url, settings, resolver))

    @property
    def left(self) -> bool:
        return self.tried < self.settings.max_attempts

    def next(self) -> tuple[DeliveryAttempt, float | None]:
        """One try, and the seconds to wait before the next one (None: it was the last)."""
        # A client per try: a scheduled retry holds no connection while it waits, and a TLS
        # connection verified for one host name never carries a request for another.
        # trust_env=False: an environment proxy would connect to the name, not the checked
        # address.
        with httpx.Client(
            timeout=self.settings.timeout_seconds,
            follow_redirects=False,
            trust_env=False,
            verify=self.ssl_context if self.ssl_context is not None else True,
        ) as client:
            attempt, final, retry_after = _try_once(
                client, self.pinned, self.signer, self.msg_id, self.body
            )
        self.tried += 1
        if final or not self.left:
            return attempt, None
        return attempt, backoff_seconds(self.settings, self.tried, retry_after)


def deliver(
    message: WebhookMessage,
    settings: WebhookSettings,
    *,
    sleep: Sleep = time.sleep,
    resolver: Resolver = system_resolver,
    ssl_context: ssl.SSLContext | None = None,
    tried: int = 0,
    on_attempt: AttemptHook | None = None,
) -> list[DeliveryAttempt]:
    """POST one event until a 2xx, a final answer, or ``max_attempts``; every try recorded.

    Blocking (run it in a thread). An unsafe target gives one failed attempt and no request.
    ``ssl_context`` replaces the system's trust store (tests, private CAs). ``tried``: tries
    made before (a delivery resumed after a restart), counted against ``max_attempts``;
    ``on_attempt`` hears of each try as it ends, with the wait before the next one.
    """
    tries = DeliveryTries(
        message, settings, resolver=resolver, ssl_context=ssl_context, tried=tried
    )
    attempts: list[DeliveryAttempt] = []
    # A loop rather than tenacity: whether to retry and how long to wait depend on the
    # response (status, Retry-After), and every try must be recorded; here that reads plainer.
    while tries.left:
        attempt, wait = tries.next()
        attempts.append(attempt)
        if on_attempt is not None:
            on_attempt(attempt, wait)
        if wait is None:
            break
        sleep(wait)
    return attempts


def _try_once(
    client: httpx.Client,
    pinned: Callable[[], PinnedTarget],
    signer: Webhook,
    msg_id: str,
    body: str,
) -> tuple[DeliveryAttempt, bool, float | None]:
    """One try: the attempt, whether it is final (success or not worth repeating), Retry-After."""
    at = datetime.now(UTC)
    started = time.perf_counter()

    def attempt(status: int | None, error: str | None) -> DeliveryAttempt:
        return DeliveryAttempt(at, status, error, round((time.perf_counter() - started) * 1000))

    try:
        target = pinned()
        response = client.send(_request(client, target, signer, msg_id, body), stream=True)
    except UnsafeTarget as exc:
        return attempt(None, f"unsafe target: {exc}"), True, None
    except (httpx.HTTPError, OSError) as exc:
        return attempt(None, f"{type(exc).__name__}: {exc}"), False, None
    response.close()  # the body is of no use to us, and may be endless
    status = response.status_code
    final = 200 <= status < 300 or not is_retryable(status)
    return attempt(status, None), final, parse_retry_after(response.headers.get("retry-after"))


def _request(
    client: httpx.Client, target: PinnedTarget, signer: Webhook, msg_id: str, body: str
) -> httpx.Request:
    # Signed per try: receivers reject timestamps more than 5 minutes off, retries come later.
    now = datetime.now(UTC)
    headers = {
        "host": target.host_header(),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signer.sign(msg_id, now, body),
    }
    # The URL names the pinned address; TLS must still ask for, and verify, the host name.
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    return client.build_request(
        "POST", target.request_url(), content=body.encode(), headers=headers, extensions=extensions
    )
