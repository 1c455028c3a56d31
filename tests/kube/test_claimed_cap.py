"""The per-tenant cap in kubernetes mode counts sync requests the API runs under a claim:
a tenant calling synchronously from several threads never runs more jobs at once than its
cap, on the API's warm workers and in runner Jobs together (on the rig, real operator)."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from docjobs.kube.client import KubeClient
from docjobs.kube.paths import documentjobs_path
from docjobs.kube.resources import LABEL_TENANT
from tests.conftest import Server

from .conftest import Operator

CAP = {"DOCJOBS_JOBS__MAX_RUNNING_PER_TENANT": "1"}
HTML = "<html><body><h1>Invoice {n}</h1><p>One page.</p></body></html>"


def processing(kube: KubeClient, namespace: str, tenant: str) -> int:
    jobs = kube.items(documentjobs_path(namespace), {LABEL_TENANT: tenant})
    return sum((job.get("status") or {}).get("phase") == "Processing" for job in jobs)


@pytest.mark.parametrize(
    ("api_env", "operator_env"),
    [({**CAP, "DOCJOBS_KUBERNETES__SYNC_WORKERS": "2"}, CAP)],
    ids=["cap-1"],
)
def test_claimed_sync_jobs_count_against_the_tenants_cap(
    kube_server: Server, operator: Operator, kube: KubeClient, namespace: str
) -> None:
    key = kube_server.key("capped")
    answers: list[requests.Response] = []

    def convert(n: int) -> None:
        answers.append(
            requests.post(
                f"{kube_server.base}/api/v1/convert/html-to-pdf",
                headers={"X-API-Key": key},
                data={"content": HTML.format(n=n)},
                timeout=300,
            )
        )

    callers = [threading.Thread(target=convert, args=(n,)) for n in range(3)]
    for caller in callers:
        caller.start()
    most = 0
    while any(caller.is_alive() for caller in callers):
        most = max(most, processing(kube, namespace, "capped"))
        time.sleep(0.05)
    operator.check_alive()
    assert [a.status_code for a in answers] == [200] * 3, [a.text[:200] for a in answers]
    assert most == 1
