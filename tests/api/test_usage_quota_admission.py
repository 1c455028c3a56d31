"""A plan's monthly page quota counts the pages of the jobs it admitted and that have not
ended yet, in embedded mode: a burst of submissions sent at once cannot pass it together,
and a job that fails or is cancelled gives its pages back. The jobs are parse jobs whose
Claude stand-in holds every request until the test answers it, so none ends on its own."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from docjobs.api.app import create_app
from tests.api.conftest import PLANS, InProcessApi, app_settings, running
from tests.docs import INVOICE_TEMPLATE, invoice_pdf
from tests.receivers import LocalServer, Recorded, Reply, claude_tool_answer, serve

QUOTA = 4
GOOD = claude_tool_answer(
    {"invoice": {"number": "INV-Q", "date": "2025-05-26", "total": 1.5, "vendor": "Acme"}}
)
UNFIT = claude_tool_answer({"invoice": {"total": "lots"}})  # fails the job: not the template's


@pytest.fixture
def claude(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LocalServer, queue.Queue[bytes]]]:
    """A Claude stand-in that answers each request with the next answer the test gives."""
    answers: queue.Queue[bytes] = queue.Queue()

    def reply(record: Recorded) -> Reply:
        return 200, {}, answers.get(timeout=120)

    with serve(reply) as standin:
        monkeypatch.setenv("DOCJOBS_LLM__BASE_URL", standin.url)
        monkeypatch.setenv("DOCJOBS_LLM__API_KEY", "standin-key")
        yield standin, answers
        for _ in range(20):  # whatever still waits is answered, so nothing hangs at the end
            answers.put(GOOD)


async def _parse(api: InProcessApi, key: str, template: str, number: str) -> Any:
    files = {"file": (f"{number}.pdf", invoice_pdf(number=number), "application/pdf")}
    return await api.post(
        key, "/v1/documents/parse/async", files=files, data={"templateId": template}
    )


async def _status(api: InProcessApi, key: str, job_id: str) -> str:
    return str((await api.get(key, f"/api/v1/jobs/{job_id}")).json()["status"])


def _refused(response: Any) -> bool:
    return response.status_code == 429 and response.json()["error"]["code"] == "quota_exceeded"


@pytest.mark.anyio
async def test_jobs_not_ended_hold_their_pages_and_give_them_back_when_they_fail_or_are_cancelled(
    tmp_path: Path, claude: tuple[LocalServer, queue.Queue[bytes]]
) -> None:
    standin, answers = claude
    settings = app_settings(
        tmp_path / "data",
        llm={"base_url": standin.url, "api_key": "standin-key"},
        rate_limits={"plans": {**PLANS, "metered": "6000/minute"}},
        usage={"monthly_page_quotas": {"metered": QUOTA}},
    )
    async with running(create_app(settings)) as api:
        key = api.key("quota-burst", plan="metered")
        made = await api.post(key, "/v1/templates", json={**INVOICE_TEMPLATE, "engine": "llm"})
        template = made.json()["templateId"]

        # Six one-page invoices at once against a quota of four pages, none ended yet.
        burst = await asyncio.gather(
            *(_parse(api, key, template, f"INV-B{n}") for n in range(QUOTA + 2))
        )
        admitted = [r.json()["jobId"] for r in burst if r.status_code == 202]
        assert len(admitted) == QUOTA, [r.status_code for r in burst]
        assert sum(_refused(r) for r in burst) == 2
        refusal = next(r for r in burst if r.status_code == 429).json()["error"]["message"]
        assert f"{QUOTA} are used this month, jobs not ended yet included" in refusal
        statuses = [await _status(api, key, job_id) for job_id in admitted]
        assert set(statuses) <= {"pending", "processing"}, statuses
        usage = (await api.get(key, "/api/v1/usage")).json()["totals"]
        assert usage["jobs"] == 0 and usage["pages"] == 0  # nothing ended: no record yet
        assert _refused(await _parse(api, key, template, "INV-LATE"))

        # A cancelled job gives its page back: one more fits, then none.
        standin.wait_for(1)  # one job is with Claude; the others wait for the worker
        now = {job_id: await _status(api, key, job_id) for job_id in admitted}
        (processing,) = [job_id for job_id, status in now.items() if status == "processing"]
        waiting = [job_id for job_id, status in now.items() if status == "pending"]
        assert (await api.request("DELETE", key, f"/api/v1/jobs/{waiting[0]}")).is_success
        await api.wait_for(key, waiting[0], statuses=("cancelled",))
        assert (await _parse(api, key, template, "INV-C1")).status_code == 202
        assert _refused(await _parse(api, key, template, "INV-C2"))

        # A failed job gives its page back too.
        answers.put(UNFIT)
        with anyio.fail_after(60):
            while await _status(api, key, processing) != "failed":
                if await _status(api, key, processing) == "complete":
                    raise AssertionError("the unfit answer completed the job")
                await anyio.sleep(0.1)
        assert (await _parse(api, key, template, "INV-F1")).status_code == 202
        assert _refused(await _parse(api, key, template, "INV-F2"))
