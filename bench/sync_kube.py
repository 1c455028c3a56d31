"""Sync requests: kubernetes mode (warm workers in the API, claimed DocumentJobs) against
embedded mode, on the same machine and inputs.

    .venv/bin/python bench/sync_kube.py [--rounds 15] [--pause 0.1] [--html-only]

Uses the running rig (``scripts/local-cluster up``; started and stopped here if it is not
up). Starts ``docjobs serve`` twice on loopback, each with 2 warm runner workers: embedded
(SQLite, files in its data directory) and kubernetes mode in a fresh namespace (DocumentJobs
on the rig's kube-apiserver, files in its MinIO). Times the sync one-page HTML -> PDF and
one-page Tesseract OCR through each, one warm-up request first; the two servers take turns
request by request (the first of each pair alternating), so a machine busy with other work
weighs on both modes alike (``--pause``: seconds between requests, so what a server still
does after answering weighs on neither). Prints a Markdown table of medians, p90s and the
kubernetes / embedded ratio. No operator runs: every request must be served by the API's
own workers (a request that is not would wait out the sync limit).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.embedded import p90  # noqa: E402
from docjobs.kube.client import KubeClient  # noqa: E402
from tests.conftest import Server  # noqa: E402
from tests.crds import install_crds  # noqa: E402
from tests.docs import png_bytes, sentence_lines, text_image  # noqa: E402
from tests.rig.fixtures import _read_env, _state_dir, local_cluster, wait_for  # noqa: E402

HTML = "<html><body><h1>Quarterly report</h1>" + "<p>Revenue grew in every region.</p>" * 20
PLANS = json.dumps({"business": "6000/minute"})
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


Case = Callable[[], None]


def cases(server: Server, rounds: int, tag: str) -> tuple[Case, Case]:
    """Sync HTML -> PDF and sync one-page OCR through ``server``; distinct inputs per request
    (identical ones would be answered from the first job)."""
    auth = {"X-API-Key": server.key("bench", "business")}
    counter = iter(range(10**9))
    pages = iter([png_bytes(text_image(sentence_lines(n, 10), size=32)) for n in range(rounds + 1)])

    def html() -> None:
        body = {"content": HTML + f"<!-- {tag} {next(counter)} -->"}
        r = requests.post(
            f"{server.base}/api/v1/convert/html-to-pdf", headers=auth, data=body, timeout=120
        )
        assert r.status_code == 200, r.text

    def ocr() -> None:
        r = requests.post(
            f"{server.base}/api/v1/ocr/extract/simple",
            headers=auth,
            files={"file": ("p.png", next(pages), "image/png")},
            timeout=120,
        )
        assert r.status_code == 200, r.text

    return html, ocr


def in_turns(
    first: Case, second: Case, rounds: int, pause: float
) -> tuple[list[float], list[float]]:
    """Samples of ``first`` and ``second`` after one warm-up each, taken in turns, each
    ``pause`` seconds after the one before."""
    first()
    second()
    samples: tuple[list[float], list[float]] = ([], [])
    for round_ in range(rounds):
        order = (0, 1) if round_ % 2 == 0 else (1, 0)
        for which in order:
            time.sleep(pause)
            started = time.perf_counter()
            (first, second)[which]()
            samples[which].append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--pause",
        type=float,
        default=0.0,
        help="seconds between requests: what a server does after answering (a status write"
        " still on its way) then no longer weighs on the other server's next request",
    )
    parser.add_argument(
        "--html-only", action="store_true", help="skip the OCR case (many rounds of one case)"
    )
    args = parser.parse_args()
    rounds, pause = args.rounds, args.pause

    started_rig = local_cluster("status", 30).returncode != 0
    if started_rig and local_cluster("up", 3600).returncode != 0:
        sys.exit("cannot start the rig")
    env = _read_env(_state_dir() / "env")
    api = KubeClient.from_environment(kubeconfig=env["KUBECONFIG"])
    install_crds(api)
    ns = f"bench-sync-{uuid.uuid4().hex[:6]}"
    api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    )
    wait_for(lambda: api.get(f"/api/v1/namespaces/{ns}/serviceaccounts/default"), 30)
    common = {"DOCJOBS_RUNNER__CONCURRENCY": "2", "DOCJOBS_RATE_LIMITS__PLANS": PLANS}
    try:
        with tempfile.TemporaryDirectory() as scratch:
            embedded = Server(Path(scratch) / "embedded", env=common)
            kube = Server(
                Path(scratch) / "kube",
                env={**env, **common, "DOCJOBS_KUBERNETES__SYNC_WORKERS": "2"},
                args=["--backend", "kubernetes", "--namespace", ns],
            )
            try:
                embedded.start()
                kube.start()
                embedded_html, embedded_ocr = cases(embedded, rounds, "embedded")
                kube_html, kube_ocr = cases(kube, rounds, "kubernetes")
                html = in_turns(embedded_html, kube_html, rounds, pause)
                measured = {"HTML -> PDF, 1 page": html}
                if not args.html_only:
                    ocr = in_turns(embedded_ocr, kube_ocr, rounds, pause)
                    measured["Tesseract OCR, 1 page"] = ocr
            finally:
                kube.stop()
                embedded.stop()
    finally:
        api.delete(f"/api/v1/namespaces/{ns}")
        if started_rig:
            local_cluster("down", 120)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {rounds} rounds in turns after one warm-up,"
        f" {pause:g} s apart\n"
    )
    print("| case (sync) | embedded median | kubernetes median | kubernetes p90 | ratio |")
    print("|---|---|---|---|---|")
    for name, (base, kube_samples) in measured.items():
        e, k = statistics.median(base), statistics.median(kube_samples)
        print(
            f"| {name} | {e * 1000:.0f} ms | {k * 1000:.0f} ms | {p90(kube_samples) * 1000:.0f} ms"
            f" | {k / e:.2f}x |"
        )


if __name__ == "__main__":
    main()
