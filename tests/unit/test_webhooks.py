"""Webhook delivery against real HTTP(S) receivers on loopback; no traffic leaves the host.

Names such as ``receiver.test`` never reach DNS: an injected resolver answers them, so a
request that arrives proves the connection went to the pinned address.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from docjobs.backends.embedded.database import SQLiteDatabase
from docjobs.backends.embedded.webhooks import SQLiteWebhookStore
from docjobs.webhooks.delivery import (
    DeliveryAttempt,
    Network,
    backoff_seconds,
    parse_retry_after,
)
from docjobs.webhooks.driver import DeliveryJournal, PriorTries, deliver_event
from docjobs.webhooks.fanout import Target, targets_of
from docjobs.webhooks.messages import WebhookMessage, message_id, new_secret
from docjobs.webhooks.policy import WebhookSettings
from docjobs.webhooks.queue import DeliveryQueue
from docjobs.webhooks.records import MAX_ENDPOINTS_PER_TENANT, PendingEvent
from docjobs.webhooks.targets import UnsafeTarget, check_url, is_public_address, resolve_target

pytestmark = pytest.mark.timeout(30)

JOB = {"jobId": "job-1", "status": "completed", "pageCount": 2}


# --- receivers ------------------------------------------------------------------------------


@dataclass
class Hit:
    at: float
    headers: dict[str, str]
    body: bytes
    local_ip: str


@dataclass
class Receiver:
    """An HTTP(S) server on a random loopback port answering a script of (status, headers)."""

    answers: list[tuple[int, dict[str, str]]] = field(default_factory=lambda: [(204, {})])
    host: str = "127.0.0.1"
    tls: ssl.SSLContext | None = None
    hits: list[Hit] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                local_ip = self.connection.getsockname()[0]
                receiver.hits.append(Hit(time.monotonic(), headers, body, local_ip))
                n = min(len(receiver.hits), len(receiver.answers)) - 1
                status, extra = receiver.answers[n]
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            daemon_threads = True

        self.server = Server((self.host, 0), Handler)
        if self.tls is not None:
            self.tls.sni_callback = lambda sock, name, ctx: self.sni.append(name)
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        # A short poll so shutdown() at teardown returns at once.
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def url(self, host: str | None = None, path: str = "/hook") -> str:
        host = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(*answers: tuple[int, dict[str, str]], **kwargs: object) -> Receiver:
        r = Receiver(list(answers) or [(204, {})], **kwargs)  # type: ignore[arg-type]
        started.append(r)
        return r

    yield start
    for r in started:
        r.close()


def fast(**kwargs: object) -> WebhookSettings:
    """Tiny backoffs so retries take milliseconds."""
    values: dict[str, object] = {
        "initial_backoff_seconds": 0.01,
        "max_backoff_seconds": 0.05,
        "timeout_seconds": 5,
        **kwargs,
    }
    return WebhookSettings.model_validate(values)


LOCAL = fast(allow_private_targets=True)


class Resolver:
    """Stub DNS: counts calls, answers from a fixed list (or raises)."""

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer.split(",")


def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"resolver called for {host}")


class MemoryJournal:
    """A journal in memory: what the driver recorded, and the tries a restart left."""

    def __init__(self, prior: dict[str, PriorTries] | None = None) -> None:
        self.before = prior or {}
        self.waits: list[float] = []
        """Seconds from each pending try's record to the next try it asked for."""
        self.tried = threading.Event()
        self.settled: list[tuple[str, bool]] = []

    def prior(self) -> dict[str, PriorTries]:
        return self.before

    def record_try(
        self, target: str, attempts: Sequence[DeliveryAttempt], next_try_at: datetime
    ) -> None:
        self.waits.append((next_try_at - datetime.now(UTC)).total_seconds())
        self.tried.set()

    def settle(self, target: str, attempts: Sequence[DeliveryAttempt], delivered: bool) -> None:
        self.attempts = list(attempts)
        self.settled.append((target, delivered))


def start(
    message: WebhookMessage,
    settings: WebhookSettings,
    journal: DeliveryJournal,
    network: Network | None = None,
) -> tuple[DeliveryQueue, threading.Event]:
    """The message's delivery to one target through the driver, on a queue of its own."""
    queue, done = DeliveryQueue(1), threading.Event()
    event = PendingEvent(
        "job-1",
        message.event_type,
        "acme",
        dict(message.data),
        None,
        message.occurred_at or datetime.now(UTC),
    )
    target = Target("target", message.url, message.secret)
    try:
        deliver_event(queue, settings, journal, event, [target], done.set, network)
    except BaseException:
        queue.close()
        raise
    return queue, done


def deliver(
    message: WebhookMessage,
    settings: WebhookSettings,
    *,
    journal: MemoryJournal | None = None,
    resolver: Callable[[str, int], list[str]] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> list[DeliveryAttempt]:
    """Every try of the message to one target until it settles, through the driver."""
    journal = journal or MemoryJournal()
    network = Network(resolver or Network().resolver, ssl_context)
    queue, done = start(message, settings, journal, network)
    try:
        assert done.wait(25), "the delivery did not settle"
    finally:
        queue.close()
    return journal.attempts


def statuses(attempts: list[DeliveryAttempt]) -> list[int | None]:
    return [a.status_code for a in attempts]


# --- signing and payload --------------------------------------------------------------------


def test_receiver_verifies_signature_and_gets_payload(receiver: Callable[..., Receiver]) -> None:
    r = receiver()
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    ended = datetime(2026, 1, 27, 10, 30, 45, 758871, tzinfo=UTC)

    attempts = deliver(
        WebhookMessage(r.url(), secret, "job.completed", JOB, occurred_at=ended),
        LOCAL,
        resolver=no_dns,
    )

    assert statuses(attempts) == [204] and attempts[0].ok and attempts[0].error is None
    (hit,) = r.hits
    payload = Webhook(secret).verify(hit.body, hit.headers)
    assert payload == {
        "type": "job.completed",
        "timestamp": "2026-01-27T10:30:45Z",
        "data": JOB,
    }
    assert hit.headers["content-type"] == "application/json"
    assert hit.headers["webhook-id"].startswith("msg_")
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(hit.body, hit.headers)


def test_webhook_id_is_stable_per_job_target_and_event() -> None:
    assert message_id("j1", "wh_1", "job.failed") == message_id("j1", "wh_1", "job.failed")
    ids = {
        message_id(*key)
        for key in [
            ("j1", "wh_1", "job.failed"),
            ("j2", "wh_1", "job.failed"),
            ("j1", "wh_2", "job.failed"),
            ("j1", "wh_1", "job.cancelled"),
        ]
    }
    assert len(ids) == 4


def test_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match="event type"):
        deliver(WebhookMessage("http://127.0.0.1:9/", new_secret(), "job.exploded", {}), LOCAL)


# --- retries --------------------------------------------------------------------------------


def test_500_then_success_retries_with_doubling_capped_backoff(
    receiver: Callable[..., Receiver],
) -> None:
    r = receiver((500, {}), (502, {}), (503, {}), (200, {}))
    secret, journal = new_secret(), MemoryJournal()

    attempts = deliver(
        WebhookMessage(r.url(), secret, "job.failed", JOB),
        fast(allow_private_targets=True, initial_backoff_seconds=0.1, max_backoff_seconds=0.3),
        journal=journal,
    )

    assert statuses(attempts) == [500, 502, 503, 200]
    # Each pending try recorded with the next one's due time: doubled, then capped.
    assert journal.waits == pytest.approx([0.1, 0.2, 0.3], abs=0.05)
    gaps = [later.at - earlier.at for earlier, later in zip(r.hits, r.hits[1:], strict=False)]
    assert all(gap >= wait - 0.01 for gap, wait in zip(gaps, (0.1, 0.2, 0.3), strict=True))
    assert journal.settled == [("target", True)]
    assert len({h.headers["webhook-id"] for h in r.hits}) == 1  # receivers can dedupe
    for hit in r.hits:  # every try is signed (and timestamped) afresh
        assert Webhook(secret).verify(hit.body, hit.headers)["type"] == "job.failed"


def test_resumed_delivery_counts_earlier_tries_and_reports_each_one(
    receiver: Callable[..., Receiver],
) -> None:
    r = receiver((500, {}))
    before = tuple(DeliveryAttempt(datetime.now(UTC), 500, None, 1) for _ in range(2))
    resumed = time.monotonic()
    due = datetime.now(UTC) + timedelta(seconds=0.5)
    journal = MemoryJournal({"target": PriorTries(before, next_try_at=due)})

    attempts = deliver(
        WebhookMessage(r.url(), new_secret(), "job.completed", JOB),
        fast(
            allow_private_targets=True,
            max_attempts=4,
            initial_backoff_seconds=0.05,
            max_backoff_seconds=9,
        ),
        journal=journal,
    )

    # Two tries before a restart: two left of four, not before the due time the last one
    # asked for, the backoff going on from the third.
    assert statuses(attempts) == [500] * 4 and len(r.hits) == 2
    assert r.hits[0].at - resumed >= 0.45
    assert journal.waits == pytest.approx([0.2], abs=0.05)
    assert journal.settled == [("target", False)]


def test_a_settled_target_is_not_sent_again(receiver: Callable[..., Receiver]) -> None:
    r = receiver()
    failed = (DeliveryAttempt(datetime.now(UTC), 410, None, 1),)
    journal = MemoryJournal({"target": PriorTries(failed, settled=True)})
    message = WebhookMessage(r.url(), new_secret(), "job.completed", JOB)

    queue, done = start(message, LOCAL, journal)
    queue.close()

    assert done.is_set() and r.hits == [] and journal.settled == []


def test_429_retry_after_is_honoured(receiver: Callable[..., Receiver]) -> None:
    r = receiver((429, {"Retry-After": "1"}), (200, {}))

    # real sleep
    attempts = deliver(WebhookMessage(r.url(), new_secret(), "job.completed", JOB), LOCAL)

    assert statuses(attempts) == [429, 200]
    gap = r.hits[1].at - r.hits[0].at
    assert 1.0 <= gap < 3.0
    assert attempts[1].at - attempts[0].at >= timedelta(seconds=1)


def test_retry_after_on_503_as_http_date(receiver: Callable[..., Receiver]) -> None:
    later = datetime.now(UTC) + timedelta(seconds=30)
    r = receiver((503, {"Retry-After": later.strftime("%a, %d %b %Y %H:%M:%S GMT")}), (200, {}))
    journal = MemoryJournal()

    queue, _ = start(WebhookMessage(r.url(), new_secret(), "job.completed", JOB), LOCAL, journal)
    try:
        assert journal.tried.wait(10)
    finally:
        queue.close()

    assert len(r.hits) == 1
    assert 25 <= journal.waits[0] <= 30


def test_retry_after_parsing_and_caps() -> None:
    now = datetime(2015, 10, 21, 7, 27, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 60
    assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    settings = WebhookSettings(
        initial_backoff_seconds=1, max_backoff_seconds=300, max_retry_after_seconds=3600
    )
    assert [backoff_seconds(settings, n, None) for n in (1, 2, 3, 10)] == [1, 2, 4, 300]
    assert backoff_seconds(settings, 1, 90) == 90  # never earlier than asked
    assert backoff_seconds(settings, 9, 0) == 256  # nor earlier than our own backoff
    assert backoff_seconds(settings, 1, 86400) == 3600  # a day is capped


@pytest.mark.parametrize(
    ("status", "tries"),
    [
        (400, 1),
        (401, 1),
        (403, 1),
        (404, 1),
        (410, 1),
        (422, 1),
        (408, 3),
        (409, 3),
        (425, 3),
        (429, 3),
        (500, 3),
    ],
)
def test_which_answers_are_retried(
    receiver: Callable[..., Receiver], status: int, tries: int
) -> None:
    r = receiver((status, {}))
    journal = MemoryJournal()

    attempts = deliver(
        WebhookMessage(r.url(), new_secret(), "job.failed", JOB),
        fast(allow_private_targets=True, max_attempts=3),
        journal=journal,
    )

    assert statuses(attempts) == [status] * tries and len(r.hits) == tries
    assert len(journal.waits) == tries - 1 and not attempts[-1].ok


def test_redirect_is_not_followed(receiver: Callable[..., Receiver]) -> None:
    elsewhere = receiver()
    r = receiver((307, {"Location": elsewhere.url()}))

    attempts = deliver(WebhookMessage(r.url(), new_secret(), "job.completed", JOB), LOCAL)

    assert statuses(attempts) == [307] and elsewhere.hits == []


def test_connection_errors_are_retried_and_recorded() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"  # bound, never listening
        journal = MemoryJournal()
        attempts = deliver(
            WebhookMessage(closed, new_secret(), "job.completed", JOB),
            fast(allow_private_targets=True, max_attempts=3),
            journal=journal,
        )

    assert statuses(attempts) == [None, None, None] and len(journal.waits) == 2
    assert all(a.error and "ConnectError" in a.error for a in attempts)


# --- unsafe targets -------------------------------------------------------------------------


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_private_targets_are_refused_by_default(receiver: Callable[..., Receiver]) -> None:
    v4 = receiver()
    v6 = receiver(host="::1") if ipv6_loopback() else None
    literal_or_loopback_name = [
        v4.url(),
        v4.url("localhost"),  # refused by name, before any resolution
        v4.url("127.1"),  # what getaddrinfo reads as 127.0.0.1
        v4.url("[::ffff:127.0.0.1]"),
        "http://10.1.2.3:8080/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hook",
        *([v6.url()] if v6 else []),
    ]
    to_loopback = Resolver("127.0.0.1")
    name = v4.url("receiver.test")

    def refused(url: str, resolver: Callable[[str, int], list[str]]) -> bool:
        attempts = deliver(
            WebhookMessage(url, new_secret(), "job.completed", JOB),
            fast(),
            resolver=resolver,
        )
        error = attempts[0].error or ""
        return len(attempts) == 1 and attempts[0].status_code is None and "unsafe" in error

    for url in literal_or_loopback_name:
        assert refused(url, no_dns), url
        with pytest.raises(UnsafeTarget):  # at registration already
            check_url(url, fast())
    # A name's address is only known when delivering: registration lets it through.
    check_url(name, fast())
    assert refused(name, to_loopback)
    assert to_loopback.calls == ["receiver.test"]
    assert v4.hits == [] and (v6 is None or v6.hits == [])


def test_private_targets_are_allowed_when_configured(receiver: Callable[..., Receiver]) -> None:
    v4 = receiver()
    urls: list[tuple[str, Callable[[str, int], list[str]]]] = [
        (v4.url(), no_dns),
        (v4.url("localhost"), Resolver("127.0.0.1")),
        (v4.url("receiver.test"), Resolver("127.0.0.1")),
    ]
    if ipv6_loopback():
        v6 = receiver(host="::1")
        urls.append((v6.url(), no_dns))
    for url, resolver in urls:
        attempts = deliver(
            WebhookMessage(url, new_secret(), "job.completed", JOB), LOCAL, resolver=resolver
        )
        assert statuses(attempts) == [204], url
    assert len(v4.hits) == 3
    # Not requested (no traffic off loopback in tests): they pass the checks.
    for url in ("http://10.1.2.3:8080/hook", "http://169.254.169.254/latest/meta-data/"):
        check_url(url, LOCAL)
        assert resolve_target(url, LOCAL, no_dns).ip == url.split("/")[2].split(":")[0]


def test_allowed_hosts_are_exceptions(receiver: Callable[..., Receiver]) -> None:
    r = receiver()
    by_network = fast(allowed_hosts=["127.0.0.0/8"])
    by_name = fast(allowed_hosts=["Receiver.Test."])
    assert by_name.allowed_hosts == ["receiver.test"]

    assert statuses(
        deliver(WebhookMessage(r.url(), new_secret(), "job.completed", JOB), by_network)
    ) == [204]
    assert statuses(
        deliver(
            WebhookMessage(r.url("receiver.test"), new_secret(), "job.completed", JOB),
            by_name,
            resolver=Resolver("127.0.0.1"),
        )
    ) == [204]
    # Only the name is excepted, not its address.
    assert (
        deliver(WebhookMessage(r.url(), new_secret(), "job.completed", JOB), by_name)[0].status_code
        is None
    )
    # Every answer is checked; the first allowed one is pinned and 10.0.0.1 is never tried.
    assert resolve_target(r.url("mixed.test"), by_network, Resolver("10.0.0.1,127.0.0.1")).ip == (
        "127.0.0.1"
    )
    with pytest.raises(ValueError, match="neither"):
        WebhookSettings(allowed_hosts=["not a host"])


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "http://user:pass@example.com/hook",
        "http:///hook",
        "http://example.com:0/hook",
        "http://example.com:70000/hook",
        "http://exa mple.com/",
        "http://example.com/" + "a" * 2048,
        "not a url",
    ],
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        check_url(url, LOCAL)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("2002:5db8:d822::1", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fec0::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("2002:7f00:1::", False),
        ("2002:a9fe:a9fe::", False),
        ("64:ff9b::a9fe:a9fe", False),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # Teredo for 127.0.0.1
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


# --- DNS pinning and TLS --------------------------------------------------------------------


def test_name_is_resolved_once_and_connection_goes_to_pinned_ip(
    receiver: Callable[..., Receiver],
) -> None:
    r = receiver((500, {}), (500, {}), (204, {}))
    # A second answer would rebind to the metadata address; it must never be asked for.
    dns = Resolver("127.0.0.1", "169.254.169.254")

    attempts = deliver(
        WebhookMessage(r.url("receiver.test"), new_secret(), "job.completed", JOB),
        LOCAL,
        resolver=dns,
    )

    assert statuses(attempts) == [500, 500, 204]
    assert dns.calls == ["receiver.test"]
    assert [h.local_ip for h in r.hits] == ["127.0.0.1"] * 3
    assert {h.headers["host"] for h in r.hits} == {f"receiver.test:{r.port}"}


def test_failed_resolution_is_retried_then_pinned(receiver: Callable[..., Receiver]) -> None:
    r = receiver((500, {}), (204, {}))
    dns = Resolver(socket.gaierror("temporary failure"), "127.0.0.1", "169.254.169.254")

    attempts = deliver(
        WebhookMessage(r.url("receiver.test"), new_secret(), "job.completed", JOB),
        LOCAL,
        resolver=dns,
    )

    assert statuses(attempts) == [None, 500, 204]
    assert attempts[0].error and "temporary failure" in attempts[0].error
    assert len(dns.calls) == 2


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=receiver.test",
                "-addext",
                "subjectAltName=DNS:receiver.test",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
            timeout=20,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl unavailable: {exc}")
    return cert, key


def test_https_connects_to_pinned_ip_with_sni_and_verifies_the_name(
    receiver: Callable[..., Receiver], certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    r = receiver(tls=server_tls)
    trust = ssl.create_default_context(cafile=str(cert))
    secret = new_secret()

    attempts = deliver(
        WebhookMessage(r.url("receiver.test"), secret, "job.completed", JOB),
        LOCAL,
        resolver=Resolver("127.0.0.1"),
        ssl_context=trust,
    )

    assert statuses(attempts) == [204]
    assert r.sni == ["receiver.test"]
    assert r.hits[0].headers["host"] == f"receiver.test:{r.port}"
    assert Webhook(secret).verify(r.hits[0].body, r.hits[0].headers)["data"] == JOB

    # Same address, another name: the certificate does not match and nothing is sent.
    wrong = deliver(
        WebhookMessage(r.url("other.test"), secret, "job.completed", JOB),
        fast(allow_private_targets=True, max_attempts=1),
        resolver=Resolver("127.0.0.1"),
        ssl_context=trust,
    )
    assert statuses(wrong) == [None] and wrong[0].error and "CERTIFICATE" in wrong[0].error
    assert len(r.hits) == 1


# --- store ----------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteWebhookStore]:
    db = SQLiteDatabase(tmp_path / "jobs.db")
    yield SQLiteWebhookStore(db)
    db.close()


def test_endpoint_crud_is_scoped_to_the_tenant(store: SQLiteWebhookStore) -> None:
    endpoint, secret = store.create("acme", "https://example.com/a", ["job.completed"], "main")
    assert endpoint.id.startswith("wh_") and secret.startswith("whsec_")
    assert store.list("acme") == [endpoint] and store.list("other") == []
    assert store.get("acme", endpoint.id) == endpoint
    assert store.get("other", endpoint.id) is None

    assert store.update("other", endpoint.id, url="https://evil.example/") is None
    updated = store.update(
        "acme", endpoint.id, events=["job.failed", "job.cancelled"], description="ops"
    )
    assert updated is not None
    assert updated.events == ("job.failed", "job.cancelled") and updated.description == "ops"
    assert updated.url == "https://example.com/a"
    assert store.subscribed("acme", "job.failed") == [(updated, secret)]
    assert store.subscribed("acme", "job.completed") == []
    assert store.subscribed("other", "job.failed") == []

    assert store.delete("other", endpoint.id) is False
    assert store.delete("acme", endpoint.id) is True
    assert store.get("acme", endpoint.id) is None and store.delete("acme", endpoint.id) is False


def test_endpoint_validation(store: SQLiteWebhookStore) -> None:
    for events in ([], ["job.exploded"]):
        with pytest.raises(ValueError, match="events"):
            store.create("acme", "https://example.com/", events)
    with pytest.raises(ValueError, match="tenant"):
        store.create("Not A Tenant", "https://example.com/", ["job.failed"])
    with pytest.raises(ValueError, match="description"):
        store.create("acme", "https://example.com/", ["job.failed"], "x" * 501)
    for _ in range(MAX_ENDPOINTS_PER_TENANT):
        store.create("acme", "https://example.com/", ["job.failed", "job.failed"])
    assert store.list("acme")[0].events == ("job.failed",)
    with pytest.raises(ValueError, match="at most"):
        store.create("acme", "https://example.com/", ["job.failed"])
    store.create("other", "https://example.com/", ["job.failed"])


def test_tenant_secret_and_delivery_records(store: SQLiteWebhookStore) -> None:
    first = store.tenant_secret("acme")
    assert store.tenant_secret("acme") == first != store.tenant_secret("other")

    attempts = [
        DeliveryAttempt(datetime.now(UTC), 500, None, 12),
        DeliveryAttempt(datetime.now(UTC), None, "ConnectError: refused", 3),
    ]
    saved = store.record("job-1", "wh_1", "job.failed", attempts, delivered=False)
    assert store.deliveries("job-1") == [saved] and store.deliveries("job-2") == []
    assert store.deliveries("job-1")[0].attempts == tuple(attempts)
    assert store.forget_deliveries(datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert store.deliveries("job-1") == []


def test_sqlite_journal_keeps_tries_and_due_time_across_a_restart(tmp_path: Path) -> None:
    first_try = DeliveryAttempt(datetime.now(UTC), 500, None, 12)
    due = datetime.now(UTC) + timedelta(seconds=30)
    db = SQLiteDatabase(tmp_path / "jobs.db")
    SQLiteWebhookStore(db).journal("job-1", "job.failed").record_try("wh_1", [first_try], due)
    db.close()

    db = SQLiteDatabase(tmp_path / "jobs.db")  # the next process
    store = SQLiteWebhookStore(db)
    journal = store.journal("job-1", "job.failed")
    (resumed,) = journal.prior().values()
    assert resumed.attempts == (first_try,) and not resumed.settled
    assert resumed.next_try_at is not None
    assert abs(resumed.next_try_at - due) < timedelta(milliseconds=1)
    assert store.journal("job-1", "job.completed").prior() == {}

    journal.settle("wh_1", [first_try, first_try], delivered=False)
    assert journal.prior() == {"wh_1": PriorTries((first_try, first_try), settled=True)}
    assert [r.delivered for r in store.deliveries("job-1")] == [False]
    db.close()


# --- notify ---------------------------------------------------------------------------------


def deliver_job_events(
    store: SQLiteWebhookStore,
    settings: WebhookSettings,
    events: list[PendingEvent],
) -> None:
    """Queue ``events`` on one queue of ``max_parallel_deliveries`` workers; wait until every
    target of every event is settled."""
    queue = DeliveryQueue(settings.max_parallel_deliveries)
    settled = [threading.Event() for _ in events]
    try:
        for event, done in zip(events, settled, strict=True):
            targets = targets_of(store, event.tenant, event.event_type, event.webhook_url)
            journal = store.journal(event.job_id, event.event_type)
            deliver_event(queue, settings, journal, event, targets, done.set)
        assert all(done.wait(30) for done in settled)
    finally:
        queue.close()


def job_event(job_id: str, event_type: str, job_url: str | None = None) -> PendingEvent:
    return PendingEvent(job_id, event_type, "acme", JOB, job_url, datetime.now(UTC))


def test_job_event_goes_to_subscribed_endpoints_and_the_job_url(
    receiver: Callable[..., Receiver], store: SQLiteWebhookStore
) -> None:
    completed, failed_only, job_url, other_tenant = receiver(), receiver(), receiver(), receiver()
    a, a_secret = store.create("acme", completed.url(), ["job.completed", "job.failed"])
    store.create("acme", failed_only.url(), ["job.failed"])
    unsafe, _ = store.create("acme", "http://10.1.2.3/hook", ["job.completed"])
    store.create("other", other_tenant.url(), ["job.completed"])
    settings = fast(allowed_hosts=["127.0.0.1/32"])  # loopback only, 10.x stays refused

    deliver_job_events(store, settings, [job_event("job-1", "job.completed", job_url.url())])

    (hit,) = completed.hits
    assert Webhook(a_secret).verify(hit.body, hit.headers)["data"] == JOB
    assert hit.headers["webhook-id"] == message_id("job-1", a.id, "job.completed")
    (own,) = job_url.hits
    assert Webhook(store.tenant_secret("acme")).verify(own.body, own.headers)["type"] == (
        "job.completed"
    )
    assert failed_only.hits == [] and other_tenant.hits == []

    records = {r.target: r for r in store.deliveries("job-1")}
    assert set(records) == {a.id, unsafe.id, job_url.url()}
    assert records[a.id].delivered and records[job_url.url()].delivered
    refused = records[unsafe.id]
    assert not refused.delivered and len(refused.attempts) == 1
    assert refused.attempts[0].status_code is None
    assert refused.attempts[0].error and "unsafe target" in refused.attempts[0].error


def test_job_event_without_targets_does_nothing(store: SQLiteWebhookStore) -> None:
    deliver_job_events(store, fast(), [job_event("job-1", "job.cancelled")])
    assert store.deliveries("job-1") == []
    with pytest.raises(ValueError):
        deliver_job_events(store, fast(), [job_event("job-1", "job.done")])


def test_deliveries_in_progress_never_exceed_the_setting(store: SQLiteWebhookStore) -> None:
    in_flight, most, lock = 0, 0, threading.Lock()

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            nonlocal in_flight, most
            self.rfile.read(int(self.headers.get("content-length", "0")))
            with lock:
                in_flight += 1
                most = max(most, in_flight)
            time.sleep(0.2)
            with lock:
                in_flight -= 1
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        for _ in range(4):
            store.create("acme", url, ["job.completed"])
        settings = fast(allow_private_targets=True, max_parallel_deliveries=3)
        events = [job_event(f"job-{n}", "job.completed") for n in range(3)]
        deliver_job_events(store, settings, events)
    finally:
        server.shutdown()
        server.server_close()
    # Three jobs with four endpoints each: twelve deliveries, three at a time.
    delivered = [r for n in range(3) for r in store.deliveries(f"job-{n}") if r.delivered]
    assert len(delivered) == 12
    assert most == 3
