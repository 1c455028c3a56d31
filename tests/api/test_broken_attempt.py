"""An attempt that breaks inside the embedded supervisor (not in the runner) must not leave its
job processing for good: the retry policy takes over and the job still completes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from docjobs.api.app import create_app
from docjobs.backends.embedded import supervisor

from .conftest import app_settings, running


@pytest.mark.anyio
async def test_a_broken_attempt_is_retried_instead_of_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run_attempt = supervisor.run_attempt
    calls = 0

    async def breaks_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("supervisor bug")
        return await real_run_attempt(*args, **kwargs)

    monkeypatch.setattr(supervisor, "run_attempt", breaks_once)
    retry = {"max_attempts": 3, "initial_backoff_seconds": 0.2}
    settings = app_settings(tmp_path / "data", jobs={"retry": retry})
    async with running(create_app(settings)) as api:
        key = api.key("acme")
        answer = await api.post(
            key, "/api/v1/convert/text-to-pdf?async=true", data={"content": "hello"}
        )
        assert answer.status_code == 202
        job = await api.wait_for(key, answer.json()["job_id"], timeout=60)
    assert job["status"] == "complete"
    assert calls == 2
