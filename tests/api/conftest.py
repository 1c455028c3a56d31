"""The API app in this process: ``create_app`` on a real embedded backend in a temp dir,
spoken to through ``httpx.ASGITransport`` with its lifespan run (runner workers included).

Fast, wide API cases use it; cases that need a real server process (kill -9, streamed
bodies over a socket, the documented clients as subprocesses) use ``server`` instead. Every
answer it gets must be one that the app's ``/openapi.json`` documents.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import schemathesis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from docjobs.api.app import create_app
from docjobs.config import Settings

# The plans' shared key makes many requests; free stays at its documented 10/min.
PLANS = {"free": "10/minute", "starter": "30/minute", "pro": "60/minute", "business": "6000/minute"}


def app_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings of an in-process app: one runner worker, generous plans."""
    given: dict[str, Any] = {"runner": {"concurrency": 1}, "rate_limits": {"plans": PLANS}}
    return Settings(data_dir=data_dir, **{**given, **overrides})


@dataclass
class InProcessApi:
    app: FastAPI
    client: httpx.AsyncClient
    spec: dict[str, Any]
    """The app's ``/openapi.json``."""
    document: Any
    """The same, loaded by schemathesis to check bodies against."""

    def key(self, tenant: str, plan: str = "business") -> str:
        key, _ = self.app.state.backend.keys.create(tenant, plan)
        return str(key)

    async def request(self, method: str, key: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.client.request(method, path, headers={"X-API-Key": key}, **kwargs)
        await response.request.aread()  # an upload was streamed; the check reads it again
        self.check_documented(response)
        return response

    def check_documented(self, response: httpx.Response) -> None:
        """Raises unless the document describes this answer: status, type, headers, body."""
        request = response.request
        operation = self.document.find_operation_by_path(request.method, request.url.path)
        where = f"{request.method} {request.url.path}"
        assert operation is not None, f"{where} is not documented"
        answers = self.spec["paths"][operation.path][request.method.lower()]["responses"]
        answer = answers.get(str(response.status_code))
        assert answer is not None, f"{where} answered {response.status_code}, not documented"
        media_type = response.headers.get("content-type", "").split(";")[0]
        documented_types = {t.split(";")[0] for t in answer.get("content", {})}
        assert media_type in documented_types or not response.content, (where, media_type)
        operation.validate_response(response)

    async def get(self, key: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", key, path, **kwargs)

    async def post(self, key: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", key, path, **kwargs)

    async def wait_for(
        self,
        key: str,
        job_id: str,
        statuses: Iterable[str] = ("complete", "failed", "cancelled"),
        timeout: float = 120,
    ) -> dict[str, Any]:
        """The job (jobs API shape) once it is in one of ``statuses``."""
        wanted = set(statuses)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body: dict[str, Any] = (await self.get(key, f"/api/v1/jobs/{job_id}")).json()
            if body["status"] in wanted:
                return body
            await anyio.sleep(0.1)
        raise AssertionError(f"{job_id} still {body['status']}")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[InProcessApi]:
    """``app`` started (its runner workers included) and a client speaking to it."""
    async with (
        LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(manager.app), base_url="http://testserver", timeout=120
        ) as client,
    ):
        spec = (await client.get("/openapi.json")).json()
        yield InProcessApi(app, client, spec, schemathesis.openapi.from_dict(spec))


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessApi]:
    """One app per test module; tests keep apart by using their own tenants."""
    async with running(create_app(app_settings(tmp_path_factory.mktemp("app") / "data"))) as api:
        yield api
