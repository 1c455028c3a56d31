"""Kubernetes mode on a bad day: a burst of mixed async jobs (text and markdown to PDF,
Tesseract on small scans, template parsing) through both APIs, one fault in the middle of it.
For every fault: every accepted job ends, none is lost, none is completed twice (counted by
the outcomes runners stored), each ending is sent to the webhook once, and the jobs API and
``kubectl get dj`` agree.

A worker pod (``docjobs workers``, one worker) claims the conversions, and runner Jobs take
the OCR and template jobs (and any conversion the worker leaves for the operator's short
grace): both paths run through every fault.

Faults against the rig (API server, MinIO, node gpu-0) are always undone in a ``finally``:
``local-cluster up`` restarts what was killed, on the same ports with the same data, and a
process stopped with SIGSTOP (hung: connections open, nothing answers) is resumed. While the
longer ones last, the API must go on answering reads of job status. They
act on the rig the ``cluster`` fixture uses: run them on a rig of their own with
``DOCJOBS_RIG_STATE=/tmp/faultrig`` while others share the default one. Run only this suite
with ``pytest -m faults``; ``DOCJOBS_FAULT_BURST`` sets the burst's size (60; the
fault strikes once half of it is accepted, so most of it is in flight through the fault).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from minio import Minio

from tests.conftest import Server
from tests.docs import INVOICE_TEMPLATE, invoice_pdf, png_bytes, sentence_lines, text_image
from tests.operator.conftest import Operator as RestartableOperator
from tests.receivers import LocalServer, serve
from tests.rig import control
from tests.rig.fixtures import Cluster, kubectl, wait_for

from .helpers import WorkerPod, start_worker_pod

pytestmark = pytest.mark.faults

BURST = int(os.environ.get("DOCJOBS_FAULT_BURST", "60"))
RESEND_SECONDS = 180
"""How long the client goes on sending a refused request: longer than any fault lasts."""
TERMINAL = ("complete", "failed", "cancelled")
PHASE_WORDS = {"Complete": "complete", "Failed": "failed", "Cancelled": "cancelled"}
WEBHOOK_ENV = {"DOCJOBS_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true"}
# Attempts 10 s, 25 s, 62 s and 156 s apart: a job whose attempts keep meeting the 60 s MinIO
# outage still has one left after it (the default policy gives up 30 s after the first).
RETRY_ENV = {
    "DOCJOBS_JOBS__RETRY__MAX_ATTEMPTS": "5",
    "DOCJOBS_JOBS__RETRY__INITIAL_BACKOFF_SECONDS": "10",
    "DOCJOBS_JOBS__RETRY__BACKOFF_MULTIPLIER": "2.5",
}
WORKER_ENGINES = ["convert"]
"""What the worker pod claims: the conversions. OCR and template jobs get runner Jobs."""
WORKER_GRACE = {
    "DOCJOBS_OPERATOR__CLAIM_GRACE_SECONDS": "2",
    "DOCJOBS_OPERATOR__CLAIMED_ENGINES": json.dumps(WORKER_ENGINES),
}
OUTCOME = re.compile(r"/attempts/\d+\.json$")
"""An attempt's outcome object, not the parts or progress reports beside it."""


@pytest.fixture
def api_env() -> dict[str, str]:
    return {**WEBHOOK_ENV, **RETRY_ENV}


@dataclass(frozen=True)
class Request:
    """One job of the burst: where it is posted, what is posted, where its id is answered."""

    path: str
    form: dict[str, Any]
    id_field: str = "job_id"


@dataclass
class Rig:
    """What a fault acts on: the shared rig, the API and the operator of this test."""

    cluster: Cluster
    namespace: str
    api: Server
    operator: RestartableOperator
    start_operator: Callable[[], RestartableOperator]
    workers: WorkerPod
    key: str
    template_id: str
    accepted: list[str] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    answers: dict[str, str] = field(default_factory=dict)
    """The first refusal's body for each status code."""
    operator_kills: list[float] = field(default_factory=list)
    """When an operator was killed (``time.time()``, the receiver's clock)."""


@pytest.fixture
def receiver() -> Iterator[LocalServer]:
    with serve([(200, {}, b"{}")]) as hooks:
        yield hooks


@pytest.fixture
def rig(
    cluster: Cluster, namespace: str, kube_server: Server, tmp_path: Path, receiver: LocalServer
) -> Iterator[Rig]:
    started: list[RestartableOperator] = []

    def start_operator() -> RestartableOperator:
        log = tmp_path / "operator.log"
        operator = RestartableOperator(cluster, namespace, log, {**WEBHOOK_ENV, **WORKER_GRACE})
        started.append(operator)
        return operator.start()

    key = kube_server.key("acme")
    endpoint = requests.post(
        f"{kube_server.base}/v1/webhooks",
        headers={"x-api-key": key},
        json={"url": receiver.url + "/hook"},
        timeout=30,
    )
    assert endpoint.status_code == 201, endpoint.text
    template = requests.post(
        f"{kube_server.base}/v1/templates",
        headers={"x-api-key": key},
        json=INVOICE_TEMPLATE,
        timeout=30,
    )
    assert template.status_code == 201, template.text
    operator = start_operator()
    workers = start_worker_pod(
        cluster, namespace, tmp_path / "workers.log", 1, 10, engines=WORKER_ENGINES
    )
    rig = Rig(
        cluster,
        namespace,
        kube_server,
        operator,
        start_operator,
        workers,
        key,
        template.json()["templateId"],
    )
    try:
        yield rig
    finally:
        rig.workers.stop()
        # DocumentJobs go while an operator runs (it removes their finalizers).
        if rig.operator.process is None or rig.operator.process.poll() is not None:
            rig.operator = start_operator()
        kube = cluster.api()
        djs = f"/apis/docjobs.io/v1alpha1/namespaces/{namespace}/documentjobs"
        kube.delete(djs)
        wait_for(lambda: not kube.get(djs)["items"], 60, what="DocumentJobs to be deleted")
        for operator in started:
            operator.stop()


# --- the faults -----------------------------------------------------------------------------


@contextmanager
def operator_killed(rig: Rig) -> Iterator[None]:
    rig.operator_kills.append(time.time())
    rig.operator.kill()
    try:
        time.sleep(5)
        yield
    finally:
        rig.operator = rig.start_operator()


@contextmanager
def api_server_restarted(rig: Rig) -> Iterator[None]:
    control.kill(rig.cluster.state_dir, "kube-apiserver")
    try:
        time.sleep(15)
        yield
    finally:
        control.heal(rig.cluster.state_dir)


@contextmanager
def object_store_down(rig: Rig) -> Iterator[None]:
    # 60 s: longer than a runner's retries and the S3 clients' own; shorter than the jobs'
    # backoff in RETRY_ENV, so every job can still complete.
    control.kill(rig.cluster.state_dir, "minio")
    try:
        time.sleep(60)
        yield
    finally:
        control.heal(rig.cluster.state_dir)


@dataclass
class Read:
    status: int | str
    """The HTTP status, or the exception's name when none came."""
    seconds: float
    what: str


READ_SECONDS = 5.0
"""How long a read of job status or ``/healthz`` may take while a dependency hangs or is
down: it needs neither (the watch caches, the key cache)."""


@contextmanager
def reads_answered(rig: Rig) -> Iterator[None]:
    """Reads a client keeps making meanwhile (a job's status, ``/healthz``), each answered
    200 within ``READ_SECONDS``: checked when the block ends."""
    reads: list[Read] = []
    stop = threading.Event()

    def read() -> None:
        for n in itertools.count():
            if stop.wait(0.5):
                return
            job_id = rig.accepted[n % len(rig.accepted)]
            for what in (f"/api/v1/jobs/{job_id}", "/healthz"):
                started = time.monotonic()
                try:
                    status: int | str = requests.get(
                        rig.api.base + what, headers={"X-API-Key": rig.key}, timeout=30
                    ).status_code
                except requests.RequestException as exc:
                    status = type(exc).__name__
                reads.append(Read(status, time.monotonic() - started, what))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield
    finally:
        stop.set()
        reader.join(60)
    failed = [r for r in reads if r.status != 200 or r.seconds > READ_SECONDS]
    assert len(reads) > 20 and not failed, failed[:10]


def _completed(rig: Rig) -> list[str]:
    done = []
    for job_id in list(rig.accepted):
        answer = requests.get(
            f"{rig.api.base}/api/v1/jobs/{job_id}", headers={"X-API-Key": rig.key}, timeout=10
        )
        if answer.status_code == 200 and answer.json()["status"] == "complete":
            done.append(job_id)
    return done


def _download(rig: Rig, job_id: str) -> tuple[int, float, requests.Response]:
    started = time.monotonic()
    answer = requests.get(
        f"{rig.api.base}/api/v1/jobs/{job_id}/result", headers={"X-API-Key": rig.key}, timeout=60
    )
    return answer.status_code, time.monotonic() - started, answer


@contextmanager
def object_store_hung(rig: Rig) -> Iterator[None]:
    """MinIO stopped (SIGSTOP) for 60 s while clients ask for 100 results: each download is
    refused (503, Retry-After) within seconds, and none of them holds up anything else."""
    done = wait_for(lambda: _completed(rig) or None, 180, 1.0, what="a completed job")
    with reads_answered(rig), control.stopped(rig.cluster.state_dir, "minio"):
        started = time.monotonic()
        with ThreadPoolExecutor(20) as clients:
            downloads = list(clients.map(lambda n: _download(rig, done[n % len(done)]), range(100)))
        late = [(status, seconds) for status, seconds, _ in downloads if seconds > READ_SECONDS]
        assert not late, late[:10]
        assert {status for status, _, _ in downloads} == {503}, downloads[0][2].text
        assert all(int(answer.headers["Retry-After"]) > 0 for _, _, answer in downloads)
        time.sleep(max(0.0, 60 - (time.monotonic() - started)))
    # Resumed: the results are there again.
    wait_for(lambda: _download(rig, done[0])[0] == 200, 60, 1.0, what="a result after MinIO")
    yield


@contextmanager
def api_server_down_long(rig: Rig) -> Iterator[None]:
    """The API server down for 90 s: longer than the node lifecycle controller's grace, so
    the nodes read Ready=Unknown (tainted unreachable) until their kubelet says Ready
    again; runner pods created after it must still be scheduled."""
    with reads_answered(rig):
        control.kill(rig.cluster.state_dir, "kube-apiserver")
        try:
            time.sleep(90)
        finally:
            control.heal(rig.cluster.state_dir)
    yield


@contextmanager
def runner_pods_deleted(rig: Rig) -> Iterator[None]:
    kube = rig.cluster.api()
    pods = f"/api/v1/namespaces/{rig.namespace}/pods"

    def running() -> list[dict[str, Any]]:
        items = kube.get(pods, labelSelector="docjobs.io/job")["items"]
        return [p for p in items if p["status"].get("phase") == "Running"]

    for pod in wait_for(running, 60, 0.05, what="running runner pods")[:5]:
        kube.request("DELETE", f"{pods}/{pod['metadata']['name']}")
    yield


@contextmanager
def api_killed(rig: Rig) -> Iterator[None]:
    rig.api.kill()
    try:
        time.sleep(5)
        yield
    finally:
        rig.api.start()


@contextmanager
def gpu_node_reregistered(rig: Rig) -> Iterator[None]:
    kube = rig.cluster.api()
    kube.delete("/api/v1/nodes/gpu-0")
    try:
        yield
    finally:
        # The kubelet finds its node gone at its next heartbeat and registers it again.
        wait_for(lambda: _ready(kube.get("/api/v1/nodes/gpu-0")), 60, what="gpu-0 back")


FAULTS: dict[str, Callable[[Rig], AbstractContextManager[None]]] = {
    "operator kill -9 and restart": operator_killed,
    "API server restart": api_server_restarted,
    "MinIO down": object_store_down,
    "MinIO hung under result downloads": object_store_hung,
    "API server down 90 s": api_server_down_long,
    "runner pods deleted": runner_pods_deleted,
    "API kill -9 and restart": api_killed,
    "node gpu-0 deleted and re-registered": gpu_node_reregistered,
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_burst_through_a_fault_ends_every_job_once(
    fault: str, rig: Rig, receiver: LocalServer, cluster: Cluster
) -> None:
    burst = _burst(rig)
    started = time.monotonic()
    submitter = threading.Thread(target=_submit, args=(rig, burst), daemon=True)
    submitter.start()
    # The fault strikes mid-burst: half of it accepted, most of that still queued or running.
    wait_for(
        lambda: len(rig.accepted) >= BURST // 2 or not submitter.is_alive(),
        120,
        0.05,
        what="half of the burst to be accepted",
    )
    with FAULTS[fault](rig):
        pass  # each fault lasts as long as it says, and is undone on the way out
    submitter.join(300)
    assert not submitter.is_alive(), "the burst was still being submitted after 300 s"

    # Every request of the burst got its job in the end, whatever was down when it was sent.
    assert len(rig.accepted) == BURST, f"{len(rig.accepted)} accepted; refused: {rig.refused}"
    # Refused while a dependency is down: 503 (or no answer while the API is down), never a 500.
    assert set(rig.refused) <= {"503", "ConnectionError", "ReadTimeout"}, rig.answers
    views = wait_for(
        lambda: _all_terminal(rig), 240 + 4 * BURST, 1.0, what="every accepted job to end"
    )
    print(
        f"{fault}: {len(rig.accepted)} accepted, refused {dict(rig.refused)},"
        f" all ended after {time.monotonic() - started:.0f} s"
    )
    assert rig.operator.process is not None and rig.operator.process.poll() is None
    # The worker pod took part: jobs went both ways through the fault.
    claimed = _claimed_by_workers(rig.workers)
    print(f"{fault}: the worker pod claimed {claimed:.0f} of {BURST}")
    assert claimed > 0, rig.workers.log()

    # None lost, none made twice: a request the API died answering may have made its job,
    # and sending it again found that job. Each job of the burst is one DocumentJob.
    resources = wait_for(
        lambda: _kubectl_documentjobs(cluster, rig.namespace, ended=True),
        120,
        1.0,
        what="every DocumentJob to end",
    )
    assert set(resources) == set(rig.accepted)
    every = sorted(resources)
    assert Counter(PHASE_WORDS[r["phase"]] for r in resources.values()) == {"complete": len(every)}
    # The jobs API and kubectl agree.
    for job_id, view in views.items():
        status = resources[job_id]
        assert PHASE_WORDS[status["phase"]] == view["status"], (job_id, view, status)
        assert status["attempts"] == view["attempts"], (job_id, view, status)

    # None completed twice: one stored successful outcome per job.
    runs = _successful_runs(cluster, every)
    assert runs == dict.fromkeys(every, 1), runs

    # Each ending sent once.
    wait_for(
        lambda: _events(receiver, rig.operator_kills).keys() == set(every),
        60,
        0.5,
        what="every job's event",
    )
    events = _events(receiver, rig.operator_kills)
    assert {job_id: len(ids) for job_id, ids in events.items()} == dict.fromkeys(every, 1)


# --- helpers ----------------------------------------------------------------------------------


def _claimed_by_workers(workers: WorkerPod) -> float:
    """Jobs the worker pod claimed, from its ``/metrics``."""
    for line in workers.metrics().splitlines():
        if line.startswith('docjobs_workers_claims_total{outcome="claimed"}'):
            return float(line.split()[-1])
    return 0.0


def _burst(rig: Rig) -> list[Request]:
    """BURST async jobs in turn: text→PDF, markdown→PDF, Tesseract on a small scan, and a
    template parse of an invoice. Every document is new, named after the test's namespace: a
    document submitted before is answered with the job it already has, and a job's id (so
    its objects in the shared bucket) follows from its tenant and bytes."""
    made: list[Request] = []
    tag = rig.namespace
    for n in range(BURST):
        words = [tag, *sentence_lines(n, 3)]
        if n % 4 == 0:
            made.append(
                Request(
                    "/api/v1/convert/text-to-pdf?async=true",
                    {"data": {"content": "\n".join(words)}},
                )
            )
        elif n % 4 == 1:
            markdown = f"# Report {n}\n\n{' '.join(words)}"
            made.append(
                Request(
                    "/api/v1/convert/markdown-to-pdf?async=true", {"data": {"content": markdown}}
                )
            )
        elif n % 4 == 2:
            scan = png_bytes(text_image([tag, *sentence_lines(300 + n, 2)], size=32, width=900))
            made.append(
                Request(
                    "/api/v1/ocr/extract/simple?async=true",
                    {"files": {"file": (f"scan{n}.png", scan, "image/png")}},
                )
            )
        else:
            invoice = invoice_pdf(number=f"INV-{tag}-{n}")
            form = {
                "files": {"file": (f"invoice{n}.pdf", invoice, "application/pdf")},
                "data": {"templateId": rig.template_id},
            }
            made.append(Request("/v1/documents/parse/async", form, "jobId"))
    return made


def _submit(rig: Rig, burst: list[Request]) -> None:
    """The burst, a tenth of a second apart, sent as a client would: a request refused while
    a dependency is down (503, or no answer) is sent again after its ``Retry-After`` until
    accepted. Sending again is safe: the same document is answered with the job it has."""
    for request in burst:
        deadline = time.monotonic() + RESEND_SECONDS
        while True:
            wait = 1.0
            try:
                response = requests.post(
                    rig.api.base + request.path,
                    headers={"X-API-Key": rig.key},
                    timeout=30,
                    **request.form,
                )
            except requests.RequestException as exc:
                rig.refused[type(exc).__name__] += 1
            else:
                if response.status_code in (200, 202):
                    job_id = response.json()[request.id_field]
                    if job_id not in rig.accepted:
                        rig.accepted.append(job_id)
                    break
                rig.refused[str(response.status_code)] += 1
                rig.answers.setdefault(str(response.status_code), response.text[:500])
                if response.status_code != 503:
                    break
                wait = float(response.headers.get("Retry-After") or 1)
            if time.monotonic() > deadline:
                break
            time.sleep(min(wait, 5.0))
        time.sleep(0.1)


def _all_terminal(rig: Rig) -> dict[str, dict[str, Any]] | None:
    views = {}
    for job_id in rig.accepted:
        try:
            response = requests.get(
                f"{rig.api.base}/api/v1/jobs/{job_id}", headers={"X-API-Key": rig.key}, timeout=10
            )
        except requests.RequestException:
            return None
        if response.status_code != 200 or response.json()["status"] not in TERMINAL:
            return None
        views[job_id] = response.json()
    return views


def _kubectl_documentjobs(
    cluster: Cluster, namespace: str, ended: bool = False
) -> dict[str, dict[str, Any]] | None:
    """``kubectl get dj``: each DocumentJob's status by job id; with ``ended``, only once
    every one has ended."""
    command = ["get", "dj", "--namespace", namespace, "--output", "json"]
    out = subprocess.run(
        [kubectl(), "--kubeconfig", str(cluster.kubeconfig), *command],
        check=True,
        text=True,
        stdout=subprocess.PIPE,
    ).stdout
    found = {i["spec"]["jobId"]: i.get("status") or {} for i in json.loads(out)["items"]}
    if ended and any(status.get("phase") not in PHASE_WORDS for status in found.values()):
        return None
    return found


def _successful_runs(cluster: Cluster, job_ids: list[str]) -> dict[str, int]:
    s3 = cluster.s3
    client = Minio(
        s3["endpoint"], access_key=s3["access_key"], secret_key=s3["secret_key"], secure=False
    )
    runs = {}
    for job_id in job_ids:
        prefix = f"acme/{job_id}/attempts/"
        outcomes = []
        for item in client.list_objects(s3["bucket"], prefix=prefix, recursive=True):
            if not OUTCOME.search(str(item.object_name)):
                continue
            response = client.get_object(s3["bucket"], str(item.object_name))
            outcomes.append(json.loads(response.read()))
            response.close()
        runs[job_id] = sum(1 for o in outcomes if o["exit_code"] == 0)
    return runs


def _events(receiver: LocalServer, operator_kills: list[float]) -> dict[str, set[str]]:
    """Each job's webhook message ids (one event, however often it was sent).

    An event is sent once. The one exception is an operator killed between a delivery and
    its record of it: its successor sends the event again, with the same ``webhook-id`` (the
    test then checks there is one), which is how receivers know it is a repeat. So a repeat
    must follow a kill that came after (or within 2 s, thread scheduling, before) the
    copy it repeats."""
    seen: dict[str, set[str]] = {}
    arrivals: dict[str, list[float]] = {}
    for request in list(receiver.received):
        job_id = request.json()["data"]["jobId"]
        seen.setdefault(job_id, set()).add(request.headers["webhook-id"])
        arrivals.setdefault(job_id, []).append(request.at)
    repeated = {
        job_id: times
        for job_id, times in arrivals.items()
        for before, after in itertools.pairwise(sorted(times))
        if not any(before - 2 <= kill <= after for kill in operator_kills)
    }
    assert not repeated, f"events sent again with no operator killed in between: {repeated}"
    return seen


def _ready(node: dict[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
