"""Templates are bounded: in size (runners read them whole) and in number per tenant."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from docjobs.api.app import create_app

from .conftest import app_settings

QUOTA = 3


def template(name: str, fields: int = 1) -> dict[str, Any]:
    # Many fields with long descriptions and labels: the way a real template grows large.
    return {
        "name": name,
        "engine": "rules",
        "fields": [
            {
                "name": f"field_{n}",
                "description": "d" * 500,
                "labels": [f"{n}-{label}".ljust(100, "l") for label in range(15)],
            }
            for n in range(fields)
        ],
    }


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def bounded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    settings = app_settings(
        tmp_path_factory.mktemp("bounded") / "data", limits={"max_templates_per_tenant": QUOTA}
    )
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(manager.app), base_url="http://testserver"
        ) as client,
    ):
        key, _ = app.state.backend.keys.create("bounded", "business")
        client.headers["X-API-Key"] = str(key)
        yield client


@pytest.mark.anyio
async def test_a_200_kb_template_is_refused(bounded: httpx.AsyncClient) -> None:
    big = template("big", fields=100)
    # Over 200 KB, yet under the 256 KB body limit: the template's own cap refuses it.
    assert 200 * 1024 < len(json.dumps(big)) < 256 * 1024
    refused = await bounded.post("/v1/templates", json=big)
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "template_too_large"
    assert "64 KB" in refused.json()["error"]["message"]

    small = await bounded.post("/v1/templates", json=template("small"))
    assert small.status_code == 201
    template_id = small.json()["templateId"]
    replaced = await bounded.put(f"/v1/templates/{template_id}", json=big)
    assert replaced.status_code == 413
    kept = await bounded.get(f"/v1/templates/{template_id}")
    assert kept.json()["name"] == "small"
    assert (await bounded.delete(f"/v1/templates/{template_id}")).status_code == 204


@pytest.mark.anyio
async def test_a_tenant_cannot_pass_its_template_count(bounded: httpx.AsyncClient) -> None:
    created = [await bounded.post("/v1/templates", json=template(f"t{n}")) for n in range(QUOTA)]
    assert [r.status_code for r in created] == [201] * QUOTA
    over = await bounded.post("/v1/templates", json=template("one-too-many"))
    assert over.status_code == 429
    assert over.json()["error"]["code"] == "template_quota_exceeded"
    assert f"limit is {QUOTA}" in over.json()["error"]["message"]

    # Deleting one makes room again.
    first_id = created[0].json()["templateId"]
    assert (await bounded.delete(f"/v1/templates/{first_id}")).status_code == 204
    assert (await bounded.post("/v1/templates", json=template("again"))).status_code == 201
