"""The tries of one message to one target: one POST per call, and how long to wait after it.

Each try connects to the address :func:`~docjobs.webhooks.targets.resolve_target` pinned,
never follows a redirect, and reads no body; whether to try again, and when, depends on the
answer (status, ``Retry-After``) and the policy. Where the tries are kept and how the waits
are spent is the driver's (:mod:`docjobs.webhooks.driver`).
"""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from opentelemetry.trace import SpanKind, StatusCode

from docjobs.tracing import context_of, traceparent_of, tracer
from docjobs.webhooks.messages import SignedMessage, WebhookMessage
from docjobs.webhooks.policy import WebhookSettings
from docjobs.webhooks.targets import (
    PinnedTarget,
    Resolver,
    UnsafeTarget,
    resolve_target,
    system_resolver,
)

RETRYABLE_4XX = frozenset({408, 409, 425, 429})
"""Client errors that may succeed later: timeout, conflict, too early, rate limited.

Any other 4xx (and any 3xx) is final: the receiver understood the request and refused it
(bad URL, auth, gone, ...), and the same bytes will be refused again.
"""


@dataclass(frozen=True)
class Network:
    """How tries reach receivers: the resolver, and the trust store that replaces the
    system's when set (tests, private CAs)."""

    resolver: Resolver = system_resolver
    ssl_context: ssl.SSLContext | None = None


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
    the caller chooses how to wait between them (the driver schedules the next try on its
    queue and frees the thread meanwhile).

    The host is resolved and checked once, when a try first gets an answer (a DNS failure is
    retried at the next try), so every try goes to the one checked address. ``tried``: tries
    made before (a delivery resumed after a restart), counted against ``max_attempts`` and
    the backoff.
    """

    def __init__(
        self,
        message: WebhookMessage,
        settings: WebhookSettings,
        *,
        network: Network | None = None,
        tried: int = 0,
    ) -> None:
        network = network or Network()
        self.settings = settings
        self.ssl_context = network.ssl_context
        self.tried = tried
        self.message = SignedMessage(message)
        self.traceparent = message.traceparent
        self.url = message.url
        self.pinned = functools.cache(
            lambda: resolve_target(message.url, settings, network.resolver)
        )

    @property
    def left(self) -> bool:
        return self.tried < self.settings.max_attempts

    def next(self) -> tuple[DeliveryAttempt, float | None]:
        """One try, and the seconds to wait before the next one (None: it was the last)."""
        # A client per try: a scheduled retry holds no connection while it waits, and a TLS
        # connection verified for one host name never carries a request for another.
        # trust_env=False: an environment proxy would connect to the name, not the checked
        # address.
        # A span per try, in the job's trace; the receiver gets it as its parent.
        with (
            httpx.Client(
                timeout=self.settings.timeout_seconds,
                follow_redirects=False,
                trust_env=False,
                verify=self.ssl_context if self.ssl_context is not None else True,
            ) as client,
            tracer(__name__).start_span(
                "webhook delivery",
                context=context_of(self.traceparent),
                kind=SpanKind.CLIENT,
                attributes={"url.full": self.url, "docjobs.webhook.try": self.tried + 1},
            ) as span,
        ):
            sent_as = traceparent_of(span) or self.traceparent
            attempt, final, retry_after = _try_once(client, self.pinned, self.message, sent_as)
            if attempt.status_code is not None:
                span.set_attribute("http.response.status_code", attempt.status_code)
            if not attempt.ok:
                span.set_status(StatusCode.ERROR, attempt.outcome)
        self.tried += 1
        if final or not self.left:
            return attempt, None
        return attempt, backoff_seconds(self.settings, self.tried, retry_after)


def _try_once(
    client: httpx.Client,
    pinned: Callable[[], PinnedTarget],
    message: SignedMessage,
    traceparent: str | None = None,
) -> tuple[DeliveryAttempt, bool, float | None]:
    """One try: the attempt, whether it is final (success or not worth repeating), Retry-After."""
    at = datetime.now(UTC)
    started = time.perf_counter()

    def attempt(status: int | None, error: str | None) -> DeliveryAttempt:
        return DeliveryAttempt(at, status, error, round((time.perf_counter() - started) * 1000))

    try:
        target = pinned()
        response = client.send(_request(client, target, message, traceparent), stream=True)
    except UnsafeTarget as exc:
        return attempt(None, f"unsafe target: {exc}"), True, None
    except (httpx.HTTPError, OSError) as exc:
        return attempt(None, f"{type(exc).__name__}: {exc}"), False, None
    response.close()  # the body is of no use to us, and may be endless
    status = response.status_code
    final = 200 <= status < 300 or not is_retryable(status)
    return attempt(status, None), final, parse_retry_after(response.headers.get("retry-after"))


def _request(
    client: httpx.Client,
    target: PinnedTarget,
    message: SignedMessage,
    traceparent: str | None = None,
) -> httpx.Request:
    headers = {"host": target.host_header(), **message.headers()}
    if traceparent:
        headers["traceparent"] = traceparent
    # The URL names the pinned address; TLS must still ask for, and verify, the host name.
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    return client.build_request(
        "POST",
        target.request_url(),
        content=message.body.encode(),
        headers=headers,
        extensions=extensions,
    )
