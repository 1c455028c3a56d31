"""Template and webhook-endpoint requests are rate limited per tenant (``rate_limits.management``),
apart from the plan's processing requests: a script looping over the CRUD routes is answered
429 with ``Retry-After``, and other tenants are not held up by it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from docjobs.api.app import create_app
from tests.docs import INVOICE_TEMPLATE

from .conftest import PLANS, InProcessApi, app_settings, running

pytestmark = pytest.mark.anyio

PER_MINUTE = 3


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessApi]:
    limits = {"plans": PLANS, "management": f"{PER_MINUTE}/minute"}
    settings = app_settings(tmp_path_factory.mktemp("app") / "data", rate_limits=limits)
    async with running(create_app(settings)) as api:
        yield api


def assert_refused_for_a_while(answer: httpx.Response) -> None:
    assert answer.status_code == 429, answer.text
    assert 1 <= int(answer.headers["Retry-After"]) <= 60
    assert answer.headers["X-RateLimit-Limit"] == str(PER_MINUTE)
    assert answer.headers["X-RateLimit-Remaining"] == "0"
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == "rate_limited"
    assert "template and webhook requests" in error["message"]


async def test_template_requests_past_the_rate_are_refused_with_retry_after(
    api: InProcessApi,
) -> None:
    key = api.key("tpl-looper")
    created = await api.post(key, "/v1/templates", json=INVOICE_TEMPLATE)
    assert created.status_code == 201, created.text
    path = f"/v1/templates/{created.json()['templateId']}"
    assert (await api.get(key, "/v1/templates")).status_code == 200
    assert (await api.get(key, path)).status_code == 200

    assert_refused_for_a_while(await api.request("PUT", key, path, json=INVOICE_TEMPLATE))
    assert_refused_for_a_while(await api.request("DELETE", key, path))
    # Another tenant's requests count on their own, and the looper's processing is untouched.
    assert (await api.get(api.key("tpl-neighbour"), "/v1/templates")).status_code == 200
    queued = await api.post(key, "/api/v1/convert/text-to-pdf?async=true", data={"content": "t"})
    assert queued.status_code == 202, queued.text


async def test_webhook_endpoint_requests_past_the_rate_are_refused_with_retry_after(
    api: InProcessApi,
) -> None:
    key = api.key("hook-looper")
    created = await api.post(key, "/v1/webhooks", json={"url": "https://example.com/hook"})
    assert created.status_code == 201, created.text
    path = f"/v1/webhooks/{created.json()['id']}"
    assert (await api.get(key, "/v1/webhooks")).status_code == 200
    changed = await api.request("PATCH", key, path, json={"description": "billing"})
    assert changed.status_code == 200, changed.text

    assert_refused_for_a_while(await api.get(key, path))
    assert_refused_for_a_while(await api.request("DELETE", key, path))
    assert (await api.get(api.key("hook-neighbour"), "/v1/webhooks")).status_code == 200
