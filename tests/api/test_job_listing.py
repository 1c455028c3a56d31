"""Listing a tenant's jobs a page at a time, with filters, in both backends' job stores.

1,000 jobs are written straight into each store (the embedded one's SQLite database before
the app starts; the Kubernetes one's watch cache as the API server's answers would fill it),
then read back through the API's cursor: every job exactly once, newest first, whatever the
filters.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from docjobs.api.app import create_app
from docjobs.backends.base import (
    JobQuery,
    decode_cursor,
    encode_cursor,
    listing_position,
    new_job_id,
)
from docjobs.backends.embedded.database import SQLiteDatabase
from docjobs.backends.embedded.jobs import SQLiteJobStore
from docjobs.backends.kubernetes.backend import tenant_listing
from docjobs.domain.models import (
    ConvertToPdf,
    InputRef,
    Job,
    JobError,
    JobSpec,
    JobStatus,
    OcrSimple,
    Phase,
    Progress,
)
from docjobs.kube.cache import WatchCache
from docjobs.kube.resources import DocumentJobStatus, job_of, to_resource
from tests.api.conftest import app_settings, running

TENANT = "archive"
JOBS = 1000
START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def made_jobs() -> list[Job]:
    """A thousand finished jobs: conversions and OCR, some failed, names in two families,
    created over ten days with runs of several jobs in the same microsecond."""
    chooser = random.Random(20)
    jobs = []
    for n in range(JOBS):
        created = START + timedelta(minutes=15 * (n // 4))  # four jobs per instant
        ocr = n % 3 != 0
        name = f"scan-{n:04d}.pdf" if ocr else f"notes-{n:04d}.md"
        job_id = new_job_id()
        spec = JobSpec(
            job_id=job_id,
            tenant=TENANT,
            operation=OcrSimple() if ocr else ConvertToPdf(source_format="markdown"),
            input=InputRef(
                key=f"{TENANT}/{job_id}/input",
                file_name=name,
                content_type="application/pdf" if ocr else "text/markdown",
                sha256="0" * 64,
                size=100,
                page_count=4 if ocr else None,
            ),
            created_at=created,
            ttl_seconds_after_finished=10**9,  # kept: they finished long ago
        )
        failed = chooser.random() < 0.2
        status = JobStatus(
            phase=Phase.FAILED if failed else Phase.COMPLETE,
            attempts=1,
            started_at=created,
            completed_at=created + timedelta(seconds=5),
            page_count=4 if ocr else None,
            progress=Progress(pages_done=4, pages_total=4) if ocr and not failed else None,
            error=JobError(reason="DocumentUnreadable", message="not a PDF", permanent=True)
            if failed
            else None,
        )
        jobs.append(Job(spec=spec, status=status))
    return jobs


def newest_first(jobs: list[Job]) -> list[Job]:
    return sorted(jobs, key=listing_position, reverse=True)


@pytest.fixture(scope="module")
def jobs() -> list[Job]:
    return made_jobs()


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory, jobs: list[Job]):
    """The app on a data directory whose database already holds the jobs."""
    data_dir = tmp_path_factory.mktemp("listing") / "data"
    data_dir.mkdir()
    store = SQLiteJobStore(SQLiteDatabase(data_dir / "docjobs.db"))
    for job in jobs:
        store.create(job.spec)
        store.save_status(job.spec.job_id, job.status)
    store.db.close()
    async with running(create_app(app_settings(data_dir))) as api:
        yield api


async def read_all(api: Any, key: str, limit: int, **filters: str) -> tuple[list[dict], int]:
    """Every page of the listing, following ``next_cursor``; the jobs and the total."""
    listed: list[dict] = []
    cursor: str | None = None
    totals = set()
    while True:
        params = {**filters, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        response = await api.get(key, f"/api/v1/jobs?{urlencode(params)}")
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["jobs"]) <= limit
        listed += page["jobs"]
        totals.add(page["total"])
        cursor = page.get("next_cursor")
        if cursor is None:
            break
        assert page["jobs"], "a next page promised after an empty one"
    assert len(totals) == 1, f"the total changed from page to page: {totals}"
    return listed, totals.pop()


@pytest.mark.anyio
async def test_cursor_pages_cover_every_job_exactly_once(api, jobs: list[Job]) -> None:
    key = api.key(TENANT)
    listed, total = await read_all(api, key, limit=100)
    assert total == JOBS
    assert [j["job_id"] for j in listed] == [j.spec.job_id for j in newest_first(jobs)]

    # What a list shows of each job, without asking for the job itself.
    by_id = {j.spec.job_id: j for j in jobs}
    for entry in listed:
        job = by_id[entry["job_id"]]
        assert entry["file_name"] == job.spec.input.file_name
        assert entry["page_count"] == job.status.page_count
        if job.status.phase is Phase.FAILED:
            assert entry["error"]["message"] == "not a PDF"
        else:
            assert "error" not in entry
        if job.status.progress is not None:
            assert entry["progress"] == {"pages_done": 4, "pages_total": 4}

    failed = next(e for e in listed if "error" in e)
    detail = (await api.get(key, f"/api/v1/jobs/{failed['job_id']}")).json()
    assert failed["error"] == detail["error"], "the list and the job tell one reason"

    # The compatible first page: no cursor, the newest `limit`, the total of all.
    first = (await api.get(key, "/api/v1/jobs?limit=20")).json()
    assert [j["job_id"] for j in first["jobs"]] == [j["job_id"] for j in listed[:20]]
    assert (first["total"], first["limit"]) == (JOBS, 20)
    last = (await api.get(key, f"/api/v1/jobs?limit={JOBS}")).json()
    assert len(last["jobs"]) == 100 and last["limit"] == 100, "the documented list_max"


@pytest.mark.anyio
async def test_filters_combine_across_pages(api, jobs: list[Job]) -> None:
    key = api.key(TENANT)
    after, before = START + timedelta(days=2), START + timedelta(days=8)
    want = [
        j
        for j in newest_first(jobs)
        if j.status.phase is Phase.FAILED
        and j.spec.operation.kind == "ocr.simple"
        and after < j.spec.created_at < before
        and j.spec.input.file_name.startswith("scan-0")
    ]
    assert 20 < len(want) < 200, len(want)
    listed, total = await read_all(
        api,
        key,
        limit=7,
        status="failed",
        operation="ocr.simple",
        created_after=after.isoformat(),
        created_before=before.replace(tzinfo=None).isoformat(),  # no zone: UTC
        file_name="scan-0",
    )
    assert [j["job_id"] for j in listed] == [j.spec.job_id for j in want]
    assert total == len(want)

    exact = jobs[10].spec.input.file_name
    named = (await api.get(key, f"/api/v1/jobs?file_name={exact}")).json()
    assert [j["job_id"] for j in named["jobs"]] == [jobs[10].spec.job_id]
    conversions, count = await read_all(api, key, limit=100, operation="convert")
    assert count == len(conversions) == len([j for j in jobs if j.spec.operation.kind == "convert"])

    others = (await api.get(api.key("stranger"), "/api/v1/jobs")).json()
    assert others["jobs"] == [] and others["total"] == 0 and "next_cursor" not in others
    for bad in ("cursor=nonsense", "cursor=W10", "operation=shred", "created_after=yesterday"):
        refused = await api.get(key, f"/api/v1/jobs?{bad}")
        assert refused.status_code == 422, bad
        assert refused.json()["error"]["code"] == "invalid_parameters"


def test_the_listing_walks_the_tenant_index(api) -> None:
    """The page's query reads the tenant's index in order, not every job: SQLite's plan."""
    store = api.app.state.backend.store
    query = JobQuery(
        tenant=TENANT,
        limit=20,
        phases=frozenset({Phase.FAILED}),
        operation="ocr.simple",
        file_name="scan",
        after=(START.timestamp() + 3600, "job_f"),
    )
    plans: list[str] = []
    original = store.db.query

    def explained(sql: str, args: tuple[object, ...] = ()) -> Any:
        plans.extend(r["detail"] for r in original(f"EXPLAIN QUERY PLAN {sql}", args))
        return original(sql, args)

    store.db.query = explained
    try:
        store.list_jobs(query)
    finally:
        del store.db.query
    # The total counts the tenant's rows (any index on the tenant); the page reads the
    # listing index from the cursor on, in the listing's order.
    assert len(plans) == 2 and all(p.startswith("SEARCH jobs USING") for p in plans), plans
    assert all("(tenant=?" in p for p in plans), plans
    assert "INDEX jobs_listing (tenant=? AND (created_at,job_id)<(?,?))" in plans[1], plans
    assert not [p for p in plans if "TEMP B-TREE" in p], f"sorted apart from the index: {plans}"


def cache_of(jobs: list[Job]) -> WatchCache[Job]:
    """A DocumentJob watch cache as the Kubernetes backend builds it, filled as the API
    server's answers would fill it."""
    cache: WatchCache[Job] = WatchCache(
        None,  # type: ignore[arg-type]  # never started: nothing is asked of a server
        "/documentjobs",
        job_of,
        group=tenant_listing,
    )
    for version, job in enumerate(jobs, start=1):
        resource = to_resource(job.spec, "default")
        resource["metadata"]["resourceVersion"] = str(version)
        resource["status"] = DocumentJobStatus.model_validate(job.status.model_dump()).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        cache.observe(resource)
    return cache


def pages(read: Callable[[JobQuery], tuple[list[Job], int, bool]], **filters: Any) -> list[str]:
    ids: list[str] = []
    after = None
    while True:
        page, _, more = read(JobQuery(tenant=TENANT, limit=33, after=after, **filters))
        ids += [j.spec.job_id for j in page]
        if not more:
            return ids
        after = decode_cursor(encode_cursor(listing_position(page[-1])))


def test_the_kubernetes_cache_pages_the_same_way(jobs: list[Job]) -> None:
    cache = cache_of(random.Random(3).sample(jobs, len(jobs)))  # arrival order is no order

    def read(query: JobQuery) -> tuple[list[Job], int, bool]:
        return cache.page(query.tenant, query.after, query.matches, query.limit)

    assert pages(read) == [j.spec.job_id for j in newest_first(jobs)]
    failed = frozenset({Phase.FAILED})
    assert pages(read, phases=failed, operation="convert") == [
        j.spec.job_id
        for j in newest_first(jobs)
        if j.status.phase is Phase.FAILED and j.spec.operation.kind == "convert"
    ]
    _, total, _ = read(JobQuery(tenant=TENANT, limit=1, file_name="notes-"))
    assert total == len([j for j in jobs if j.spec.operation.kind == "convert"])

    # A deleted job leaves its group; a changed one keeps a single place.
    gone = newest_first(jobs)[0]
    cache.forget(to_resource(gone.spec, "default")["metadata"]["name"])
    assert pages(read)[0] == newest_first(jobs)[1].spec.job_id
    assert len(pages(read)) == JOBS - 1
    assert read(JobQuery(tenant="nobody", limit=10)) == ([], 0, False)
