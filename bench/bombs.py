"""Hostile inputs against a served docjobs: wall time and peak memory to refusal, one figure
per bomb.

    .venv/bin/python bench/bombs.py [--only NAME ...] [--json OUT] [--against REV]
                                    [--cap-seconds 120] [--memory-cap-gib 6]

Each bomb gets a fresh ``docjobs serve`` (embedded mode, a temporary data directory, a free
port on loopback, a key made with ``docjobs keys create``), a small input the script
builds, and one request. The figure is the wall time from sending it to the answer (a
4xx, or the job's final state, polled every 100 ms) and the peak, over that time, of the
summed RSS of the server's process tree (the API process, its runner workers and their
children: Tesseract, page counting), sampled from ``/proc`` every 50 ms. ``/healthz`` is
asked every 250 ms meanwhile, on a new connection each time (2 s timeout), and its median
and worst answer times are kept.

A bomb that has no answer after ``--cap-seconds`` is recorded as still running then, and
its server is stopped. The server tree runs under a memory cap as a container would: when
its summed RSS passes ``--memory-cap-gib`` (6 GiB) the whole tree is killed (SIGKILL), as
a cgroup's OOM killer would, and the bomb is recorded as killed at the cap; every process
of it also has an address-space limit 2 GiB above the cap, in case memory grows faster than
the sampling sees. The server keeps this shell's open-file limit (recorded).

``--against REV`` serves the committed revision ``REV`` instead of the working tree (``git
archive``, in the installed layout, ahead of the editable install on ``PYTHONPATH``): the
figures from before a change. Every other setting is the default.

The bombs (``--only`` takes their names):

* ``regex``: a template field whose 38-character pattern compiles to a hundred million
  repetitions, ``POST /v1/templates``.
* ``svg-use``: HTML -> PDF of a 3 KB SVG (a ``data:`` image) of ``<use>`` nested 11 levels
  deep, 10 at each, async.
* ``html-pages``: HTML -> PDF of 160 KB of paragraphs, each on a page of its own: 20,000
  pages, async.
* ``png-pixels``: HTML -> PDF of 190 KB holding four 13,000 x 13,000 ``data:`` PNGs, async.
* ``flate``: OCR of a 5 MB one-page PDF whose content stream inflates to 5 GiB of spaces,
  async.
* ``pages-100k``: OCR of a 9 MB PDF of 100,000 pages (one level of kids), async.
* ``page-tree-610k``: OCR of a 47 MB PDF whose page tree holds 610,000 pages, sync.
* ``slow-headers``: 20,000 connections that each send half a request head and wait; the
  figure is the time until the server has closed them all.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import multiprocessing
import os
import platform
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GIB = 1024**3
MIB = 1024**2
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_SECONDS = 0.05
HEALTH_SECONDS = 0.25
TERMINAL = ("complete", "failed", "cancelled")


# --- the server and what it costs -------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants, through ``/proc/PID/task/TID/children``."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    children = Path(f"/proc/{pid}/task/{task}/children").read_text()
                    todo.extend(int(child) for child in children.split())
    return found


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):  # gone between listing and reading
        return 0


@dataclass
class Served:
    """One ``docjobs serve`` process tree, its memory watched against the cap."""

    data_dir: Path
    env: dict[str, str]
    memory_cap: int
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    peak_total: int = 0
    peak_api: int = 0
    killed_at_cap: float | None = None
    """Monotonic time at which the tree was killed for passing the memory cap."""
    _watching: bool = False
    _watcher: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def docjobs(self, *args: str) -> str:
        return subprocess.run(
            [str(BIN / "docjobs"), *args],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
            cwd=self.data_dir.parent,
        ).stdout

    def start(self) -> str:
        """Starts the server once it has a key; returns the key, once ``/readyz`` is 200."""
        key = self.docjobs(
            "keys", "create", "--tenant", "bench", "--plan", "business",
            "--data-dir", str(self.data_dir),
        ).strip().splitlines()[-1]  # fmt: skip
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        address_space = self.memory_cap + 2 * GIB

        def limits() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "docjobs"), "serve", "--port", str(self.port),
                 "--data-dir", str(self.data_dir)],
                env={**os.environ, **self.env},
                # Not the repository: ``python -m`` (the runner workers) puts the working
                # directory first on the path, ahead of PYTHONPATH.
                cwd=self.data_dir.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=limits,
                start_new_session=True,
            )  # fmt: skip
        self._watching = True
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return key
            time.sleep(0.2)
        raise RuntimeError("server did not become ready in 120 s")

    def tree_rss(self) -> tuple[int, int]:
        """Summed RSS of the tree, and the API process's own."""
        assert self.process is not None
        pids = process_tree(self.process.pid)
        sizes = [rss_bytes(pid) for pid in pids]
        return sum(sizes), sizes[0]

    def reset_peaks(self) -> None:
        self.peak_total, self.peak_api = self.tree_rss()

    def _watch(self) -> None:
        assert self.process is not None
        while self._watching and self.process.poll() is None:
            total, api = self.tree_rss()
            self.peak_total = max(self.peak_total, total)
            self.peak_api = max(self.peak_api, api)
            if total > self.memory_cap and self.killed_at_cap is None:
                self.killed_at_cap = time.monotonic()
                self.kill()
            time.sleep(SAMPLE_SECONDS)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole session: the API and every worker and engine under it."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def stop(self) -> None:
        self._watching = False
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(15)
        # Workers left behind by a killed or stuck API process go too.
        self.kill()
        self.process.wait()
        if self._watcher is not None:
            self._watcher.join()

    def log_bytes(self) -> int:
        return self.log_path.stat().st_size if self.log_path and self.log_path.exists() else 0


PROBE_ADDRESS = "127.0.0.2"
"""Where ``/healthz`` is asked from."""


class HealthProbe:
    """Asks ``/healthz`` every 250 ms on its own thread while the server process lives;
    answer times in ms, None for no answer within 2 s."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.samples: list[float | None] = []
        self._running = True
        self._thread = threading.Thread(target=self._probe, daemon=True)
        self._thread.start()

    def _probe(self) -> None:
        # A new connection each time, as a liveness probe makes: a kept one would get
        # through where a new one cannot (a full listen queue, no file descriptors left).
        # From another loopback address than the bombs' sockets, as a kubelet's probe comes
        # from another host than the clients: the per-address ceiling is not the probe's.
        request = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        while self._running and self.served.alive():
            started = time.perf_counter()
            try:
                with socket.create_connection(
                    ("127.0.0.1", self.served.port), timeout=2, source_address=(PROBE_ADDRESS, 0)
                ) as probe:
                    probe.sendall(request.encode())
                    ok = probe.recv(64).startswith(b"HTTP/1.1 200")
            except OSError:
                ok = False
            elapsed = time.perf_counter() - started
            self.samples.append(elapsed * 1000 if ok else None)
            time.sleep(max(0.0, HEALTH_SECONDS - elapsed))

    def stop(self) -> dict[str, Any]:
        self._running = False
        self._thread.join()
        answered = [ms for ms in self.samples if ms is not None]
        return {
            "healthz_probes": len(self.samples),
            "healthz_unanswered": len(self.samples) - len(answered),
            "healthz_median_ms": round(statistics.median(answered), 1) if answered else None,
            "healthz_worst_ms": round(max(answered), 1) if answered else None,
        }


# --- the bombs ------------------------------------------------------------------------------


@dataclass
class Outcome:
    answer: str
    """What the client saw: ``400 too_many_pages``, ``job failed PagesCeiling after 1
    attempt``, ``still running at 120 s``..."""
    finished: bool
    """Whether the service came to an answer (a refusal, a failure, or even success)."""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Bomb:
    name: str
    what: str
    build: Callable[[Path], Path]
    """Writes the input into a scratch folder; returns its path."""
    send: Callable[[Served, str, Path, float], Outcome]
    """Sends it to the server with the key; waits at most the given monotonic deadline."""


def answer_of(response: requests.Response) -> str:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    code = error.get("code") if isinstance(error, dict) else None
    return f"{response.status_code} {code or response.reason}"


def followed(served: Served, key: str, response: requests.Response, deadline: float) -> Outcome:
    """The answer, or for a 202 the job's final state (polled every 100 ms to the deadline)."""
    if response.status_code != 202:
        return Outcome(answer_of(response), True)
    job = response.json()
    headers = {"X-API-Key": key}
    view: dict[str, Any] = {"status": job.get("status", "pending")}
    url = f"{served.base}/api/v1/jobs/{job['job_id']}"
    while time.monotonic() < deadline and served.alive():
        with contextlib.suppress(requests.RequestException):
            answer = requests.get(url, headers=headers, timeout=5)
            if answer.status_code == 200:
                view = answer.json()
        if view["status"] in TERMINAL:
            attempts = view.get("attempts", 0)
            code = (view.get("error") or {}).get("code", "")
            plural = "" if attempts == 1 else "s"
            return Outcome(
                f"job {view['status']} {code} after {attempts} attempt{plural}".replace("  ", " "),
                True,
                {"job": _job_facts(view)},
            )
        time.sleep(0.1)
    return Outcome(f"job still {view['status']}", False, {"job": _job_facts(view)})


def _job_facts(view: dict[str, Any]) -> dict[str, Any]:
    keys = ("status", "attempts", "page_count", "progress", "error", "message")
    return {key: view[key] for key in keys if view.get(key) is not None}


def posted(
    served: Served, deadline: float, path: str, key: str, **kwargs: Any
) -> requests.Response:
    headers = {"X-API-Key": key, **kwargs.pop("headers", {})}
    return requests.post(
        f"{served.base}{path}",
        headers=headers,
        timeout=max(1.0, deadline - time.monotonic()),
        **kwargs,
    )


def send_template(served: Served, key: str, source: Path, deadline: float) -> Outcome:
    response = posted(
        served, deadline, "/v1/templates", key, data=source.read_bytes(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    return Outcome(answer_of(response), True)


def send_html(served: Served, key: str, source: Path, deadline: float) -> Outcome:
    with source.open("rb") as document:
        response = posted(
            served, deadline, "/api/v1/convert/html-to-pdf?async=true", key,
            files={"file": (source.name, document, "text/html")},
        )  # fmt: skip
    return followed(served, key, response, deadline)


def ocr_sender(run_async: bool) -> Callable[[Served, str, Path, float], Outcome]:
    def send(served: Served, key: str, source: Path, deadline: float) -> Outcome:
        query = "?async=true" if run_async else ""
        with source.open("rb") as document:
            response = posted(
                served, deadline, f"/api/v1/ocr/extract/simple{query}", key,
                files={"file": (source.name, document, "application/pdf")},
            )  # fmt: skip
        return followed(served, key, response, deadline)

    return send


def regex_template(scratch: Path) -> Path:
    pattern = "(?:(?:(?:(?:a{100}){100}){100}){100})"
    template = {"name": "bomb", "engine": "rules", "fields": [{"name": "x", "regex": pattern}]}
    path = scratch / "template.json"
    path.write_text(json.dumps(template))
    return path


def svg_use(scratch: Path) -> Path:
    levels = ['<rect id="l0" width="1" height="1"/>']
    for level in range(1, 12):
        uses = "".join(f'<use href="#l{level - 1}"/>' for _ in range(10))
        levels.append(f'<g id="l{level}">{uses}</g>')
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
        f'<defs>{"".join(levels)}</defs><use href="#l11"/></svg>'
    )
    data = base64.b64encode(svg.encode()).decode()
    path = scratch / "use.html"
    path.write_text(f'<html><body><img src="data:image/svg+xml;base64,{data}"></body></html>')
    return path


def html_pages(scratch: Path) -> Path:
    path = scratch / "pages.html"
    path.write_text("<style>p{break-after:page}</style>" + "<p>x</p>" * 20_000)
    return path


def png_pixels(scratch: Path) -> Path:
    # One bit a pixel, all white: 21 MB of pixels deflate to ~20 KB; a renderer decodes
    # each to 13,000 x 13,000 RGBA, 676 MB.
    picture = io.BytesIO()
    Image.new("1", (13_000, 13_000), 1).save(picture, format="PNG", compress_level=9)
    data = base64.b64encode(picture.getvalue()).decode()
    images = "".join(f'<img src="data:image/png;base64,{data}">' for _ in range(4))
    path = scratch / "pixels.html"
    path.write_text(f"<html><body>{images}</body></html>")
    return path


class PdfWriter:
    """Objects numbered from 1 in the order written, then a cross-reference table."""

    def __init__(self, path: Path) -> None:
        self.out = path.open("wb")
        self.out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        self.offsets: list[int] = []

    def add(self, body: bytes) -> int:
        self.offsets.append(self.out.tell())
        number = len(self.offsets)
        self.out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
        return number

    def close(self, root: int) -> None:
        start = self.out.tell()
        self.out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(self.offsets) + 1))
        self.out.writelines(b"%010d 00000 n \n" % offset for offset in self.offsets)
        self.out.write(
            b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(self.offsets) + 1, root, start)
        )
        self.out.close()


def paged_pdf(path: Path, pages: int, fan_out: int, content: bytes | None) -> Path:
    """A PDF of ``pages`` pages in a page tree of nodes with ``fan_out`` kids each, written
    top down. The pages inherit their size and font from the root; with ``content`` they
    share that one content stream, without it they are blank."""
    sizes = [pages]  # nodes of each level, from the leaves up to the root
    while sizes[-1] > 1:
        sizes.append(-(-sizes[-1] // fan_out))
    sizes.reverse()
    # Objects: 1 catalog, 2 font, 3 content, then each level's nodes, the root first.
    first = [4]
    for size in sizes:
        first.append(first[-1] + size)
    writer = PdfWriter(path)
    writer.add(b"<< /Type /Catalog /Pages 4 0 R >>")
    writer.add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    stream = content or b""
    writer.add(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    inherited = b" /MediaBox [0 0 612 792] /Resources << /Font << /F1 2 0 R >> >>"
    for depth, size in enumerate(sizes[:-1]):
        span = fan_out ** (len(sizes) - 1 - depth)  # pages under one node of this level
        for index in range(size):
            below = range(index * fan_out, min((index + 1) * fan_out, sizes[depth + 1]))
            kids = b" ".join(b"%d 0 R" % (first[depth + 1] + kid) for kid in below)
            count = min(span, pages - index * span)
            if depth == 0:
                extra = inherited
            else:
                extra = b" /Parent %d 0 R" % (first[depth - 1] + index // fan_out)
            writer.add(b"<< /Type /Pages%s /Kids [%s] /Count %d >>" % (extra, kids, count))
    contents = b" /Contents 3 0 R" if content else b""
    for index in range(pages):
        parent = first[len(sizes) - 2] + index // fan_out
        writer.add(b"<</Type/Page/Parent %d 0 R%s>>" % (parent, contents))
    writer.close(root=1)
    return path


def pages_100k(scratch: Path) -> Path:
    text = b"BT /F1 24 Tf 72 700 Td (Quarterly report, page after page) Tj ET"
    return paged_pdf(scratch / "pages-100k.pdf", 100_000, 100_000, text)


def page_tree_610k(scratch: Path) -> Path:
    return paged_pdf(scratch / "page-tree-610k.pdf", 610_000, 1000, None)


def flate_bomb(scratch: Path, gib: int = 5) -> Path:
    """One page whose content stream inflates to ``gib`` GiB of spaces (valid content: only
    whitespace). Built from one 16 MiB segment repeated: after a full flush, deflate starts
    afresh, so each segment compresses to the same bytes."""
    chunk = b" " * (16 * MIB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush()
    repeats = gib * GIB // len(chunk)
    checksum = 1
    for _ in range(repeats):
        checksum = zlib.adler32(chunk, checksum)
    path = scratch / "flate.pdf"
    writer = PdfWriter(path)
    writer.add(b"<< /Type /Catalog /Pages 2 0 R >>")
    writer.add(b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
    writer.add(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>")
    length = 2 + len(segment) * repeats + len(end) + 4
    writer.offsets.append(writer.out.tell())
    writer.out.write(b"4 0 obj\n<< /Length %d /Filter /FlateDecode >>\nstream\n\x78\xda" % length)
    for _ in range(repeats):
        writer.out.write(segment)
    writer.out.write(end + checksum.to_bytes(4, "big") + b"\nendstream\nendobj\n")
    writer.close(root=1)
    return path


SOCKETS_PER_HOLDER = 10_000
"""Sockets one process holds, well under a usual open-file limit: the slow-header bomb
spreads its sockets over as many processes as it needs."""


def hold_sockets(port: int, count: int, started: float, deadline: float) -> dict[str, Any]:
    """Opens ``count`` connections, each with half a request head, and waits until the server
    has closed them or the deadline passes. Runs in a process of its own, for its files."""
    head = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ".encode()
    poller = select.epoll()
    sockets: dict[int, socket.socket] = {}
    failed = failing = 0
    try:
        while len(sockets) + failed < count and time.monotonic() < deadline:
            sock = socket.socket()
            sock.settimeout(2)
            try:
                sock.connect(("127.0.0.1", port))
                sock.sendall(head)
            except OSError:
                sock.close()
                failed += 1
                failing += 1
                if failing == 5:  # the listen queue is full: nothing more gets in
                    break
                continue
            failing = 0
            sock.setblocking(False)
            sockets[sock.fileno()] = sock
            poller.register(sock.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
        facts: dict[str, Any] = {
            "opened": len(sockets),
            "failed": failed,
            "opened_at": time.monotonic() - started,
            "closed": 0,
            "last_closed_at": None,
        }
        while sockets and time.monotonic() < deadline:
            # Readable means closed, or answered (a refusal) and then closed: either way,
            # the server let go of it.
            for fd, _ in poller.poll(0.2):
                poller.unregister(fd)
                sockets.pop(fd).close()
                facts["closed"] += 1
                facts["last_closed_at"] = time.monotonic() - started
        facts["still_open"] = len(sockets)
        return facts
    finally:
        for sock in sockets.values():
            sock.close()
        poller.close()


def slow_headers(served: Served, key: str, count_file: Path, deadline: float) -> Outcome:
    """Half-open connections from a few processes at once; the answer is how many the
    server closed, and when the last went."""
    wanted = int(count_file.read_text())
    shares = [SOCKETS_PER_HOLDER] * (wanted // SOCKETS_PER_HOLDER)
    if wanted % SOCKETS_PER_HOLDER:
        shares.append(wanted % SOCKETS_PER_HOLDER)
    started = time.monotonic()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(shares), mp_context=spawn) as holders:
        held = list(
            holders.map(
                hold_sockets,
                [served.port] * len(shares),
                shares,
                [started] * len(shares),
                [deadline] * len(shares),
            )
        )
    opened = sum(facts["opened"] for facts in held)
    still_open = sum(facts["still_open"] for facts in held)
    closed_at = [facts["last_closed_at"] for facts in held if facts["last_closed_at"]]
    summary = {
        "sockets_wanted": wanted,
        "sockets_opened": opened,
        "connects_failed": sum(facts["failed"] for facts in held),
        "opened_in_s": round(max(facts["opened_at"] for facts in held), 1),
        "closed_by_server": sum(facts["closed"] for facts in held),
        "last_closed_at_s": round(max(closed_at), 1) if closed_at else None,
    }
    if still_open:
        return Outcome(f"{still_open:,} of {opened:,} sockets still open", False, summary)
    return Outcome(f"server closed all {opened:,} sockets", True, summary)


def socket_count(count: int) -> Callable[[Path], Path]:
    def build(scratch: Path) -> Path:
        path = scratch / "sockets"
        path.write_text(str(count))
        return path

    return build


def bombs(sockets: int) -> list[Bomb]:
    return [
        Bomb("regex", "template pattern, 38 chars, 10^8 repetitions", regex_template,
             send_template),
        Bomb("svg-use", "SVG <use> nested 11 x 10, HTML -> PDF", svg_use, send_html),
        Bomb("html-pages", "HTML laying out 20,000 pages -> PDF", html_pages, send_html),
        Bomb("png-pixels", "four 13,000^2 data: PNGs, HTML -> PDF", png_pixels, send_html),
        Bomb("flate", "content stream inflating to 5 GiB, OCR", flate_bomb, ocr_sender(True)),
        Bomb("pages-100k", "100,000-page PDF, async OCR", pages_100k, ocr_sender(True)),
        Bomb("page-tree-610k", "610,000-page page tree, sync OCR", page_tree_610k,
             ocr_sender(False)),
        Bomb("slow-headers", f"{sockets:,} half-sent request heads", socket_count(sockets),
             slow_headers),
    ]  # fmt: skip


# --- running them ---------------------------------------------------------------------------


@dataclass
class Figure:
    bomb: str
    what: str
    input_bytes: int
    answer: str
    wall_s: float
    peak_rss_mib: float
    """Summed RSS of the server's process tree, at its highest while the bomb ran."""
    api_peak_rss_mib: float
    baseline_rss_mib: float
    """The same sum just before the bomb was sent."""
    finished: bool
    killed_at_cap: bool
    server_alive_after: bool
    log_bytes: int
    """What the server wrote to its log while the bomb ran."""
    detail: dict[str, Any] = field(default_factory=dict)


def run_bomb(bomb: Bomb, scratch: Path, env: dict[str, str], cap_s: float, cap: int) -> Figure:
    workdir = scratch / bomb.name
    workdir.mkdir(parents=True)
    source = bomb.build(workdir)
    served = Served(workdir / "data", env, cap)
    key = served.start()
    try:
        time.sleep(1)  # let the workers finish starting before the baseline
        served.reset_peaks()
        baseline = served.peak_total
        log_before = served.log_bytes()
        probe = HealthProbe(served)
        started = time.monotonic()
        deadline = started + cap_s
        try:
            outcome = bomb.send(served, key, source, deadline)
        except requests.RequestException as exc:
            outcome = Outcome(f"no answer: {type(exc).__name__}", False)
        wall = time.monotonic() - started
        health = probe.stop()
        killed = served.killed_at_cap is not None
        if killed:
            assert served.killed_at_cap is not None
            wall = served.killed_at_cap - started
            outcome = Outcome(
                f"killed at the {cap / GIB:.0f} GiB cap after {wall:.1f} s", True, outcome.detail
            )
        elif not served.alive():
            assert served.process is not None
            outcome = Outcome(
                f"server exited ({served.process.returncode}) after {wall:.1f} s",
                True,
                outcome.detail,
            )
        elif not outcome.finished:
            outcome.answer = f"{outcome.answer} at {cap_s:.0f} s"
        alive = served.alive()
        size = source.stat().st_size if source.name != "sockets" else 0
        return Figure(
            bomb=bomb.name,
            what=bomb.what,
            input_bytes=size,
            answer=outcome.answer,
            wall_s=round(wall, 1),
            peak_rss_mib=round(served.peak_total / MIB),
            api_peak_rss_mib=round(served.peak_api / MIB),
            baseline_rss_mib=round(baseline / MIB),
            finished=outcome.finished,
            killed_at_cap=killed,
            server_alive_after=alive,
            log_bytes=served.log_bytes() - log_before,
            detail={**outcome.detail, **health},
        )
    finally:
        served.stop()


def revision_path(rev: str, scratch: Path) -> Path:
    """The packages of ``rev`` laid out as installed (``docjobs.api`` is ``api/src``...)."""
    source = scratch / "source"
    source.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    package = scratch / "path" / "docjobs"
    shutil.copytree(source / "docjobs", package)
    for name in ("api", "operator", "runner"):
        shutil.copytree(source / name / "src", package / name)
    return package.parent


def served_code(env: dict[str, str], cwd: Path) -> dict[str, str]:
    """Where the server's packages come from, as its own interpreter finds them."""
    out = subprocess.run(
        [sys.executable, "-c",
         "import json, docjobs, docjobs.api, docjobs.runner; print(json.dumps("
         "{'docjobs': docjobs.__file__, 'docjobs.api': docjobs.api.__file__,"
         " 'docjobs.runner': docjobs.runner.__file__}))"],
        check=True, capture_output=True, text=True, env={**os.environ, **env}, cwd=cwd,
    ).stdout  # fmt: skip
    found: dict[str, str] = json.loads(out)
    return found


def revision(rev: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", rev],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


def table(figures: list[dict[str, Any]]) -> str:
    lines = [
        "| bomb | input | answer | wall | peak RSS (API + workers) | API process"
        " | /healthz median (worst, unanswered) |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for figure in figures:
        size = figure["input_bytes"]
        shown = f"{size / MIB:.1f} MB" if size >= MIB else f"{size / 1024:.1f} KB" if size else "-"
        median = figure["detail"].get("healthz_median_ms")
        worst = figure["detail"].get("healthz_worst_ms")
        unanswered = figure["detail"].get("healthz_unanswered", 0)
        probes = figure["detail"].get("healthz_probes", 0)
        health = (
            f"{median:.0f} ms ({worst:.0f} ms, {unanswered}/{probes})"
            if median is not None
            else f"none ({unanswered}/{probes})"
        )
        lines.append(
            f"| {figure['bomb']}: {figure['what']} | {shown} | {figure['answer']} | "
            f"{figure['wall_s']:.1f} s | {figure['peak_rss_mib']:,} MiB | "
            f"{figure['api_peak_rss_mib']:,} MiB | {health} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these bombs")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the figures here")
    parser.add_argument("--against", metavar="REV", help="serve the committed revision REV")
    parser.add_argument("--cap-seconds", type=float, default=120.0)
    parser.add_argument("--memory-cap-gib", type=float, default=6.0)
    parser.add_argument("--sockets", type=int, default=20_000)
    args = parser.parse_args()

    chosen = bombs(args.sockets)
    if args.only:
        unknown = set(args.only) - {bomb.name for bomb in chosen}
        if unknown:
            parser.error(f"no bomb {', '.join(sorted(unknown))}; there are "
                         f"{', '.join(bomb.name for bomb in chosen)}")  # fmt: skip
        chosen = [bomb for bomb in chosen if bomb.name in args.only]

    cap = int(args.memory_cap_gib * GIB)
    with tempfile.TemporaryDirectory(prefix="docjobs-bombs-") as scratch_dir:
        scratch = Path(scratch_dir)
        env: dict[str, str] = {}
        if args.against:
            env["PYTHONPATH"] = str(revision_path(args.against, scratch / "revision"))
        code = served_code(env, scratch)
        print(f"serving {code['docjobs.api']}", flush=True)
        figures = []
        for bomb in chosen:
            print(f"{bomb.name}: {bomb.what} ...", flush=True)
            figure = run_bomb(bomb, scratch / "runs", env, args.cap_seconds, cap)
            print(f"  {figure.answer}, {figure.wall_s:.1f} s, peak {figure.peak_rss_mib:,} MiB"
                  f" (API {figure.api_peak_rss_mib:,} MiB)", flush=True)  # fmt: skip
            figures.append(asdict(figure))

    report = {
        "revision": revision(args.against or "HEAD") + ("" if args.against else " + tree"),
        "served_from": code,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs,"
        f" Python {platform.python_version()}",
        "load_average": os.getloadavg(),
        "cap_seconds": args.cap_seconds,
        "memory_cap_gib": args.memory_cap_gib,
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "figures": figures,
    }
    print()
    print(table(figures))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
