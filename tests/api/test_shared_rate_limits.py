"""Two API processes share one tenant's rate limit through a real ``redis-server``."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from tests.conftest import free_port


@pytest.fixture
def redis_uri(tmp_path: Path) -> Iterator[str]:
    """A private ``redis-server`` (Debian's package, installed by scripts/setup)."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: run scripts/setup"
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


def convert(server, key: str) -> requests.Response:
    return requests.post(
        f"{server.base}/api/v1/convert/text-to-pdf",
        headers={"X-API-Key": key},
        data={"content": "hello"},
        timeout=60,
    )


def test_two_api_processes_share_one_rate_limit(make_server, redis_uri: str) -> None:
    replicas = [make_server(DOCJOBS_RATE_LIMITS__STORAGE_URI=redis_uri) for _ in range(2)]
    for replica in replicas:
        replica.start()
    # The same tenant on the free plan (10 a minute), known to both replicas.
    keys = [replica.key("acme", plan="free") for replica in replicas]
    answers = [convert(replicas[n % 2], keys[n % 2]).status_code for n in range(12)]
    # Each replica saw only six requests: counted apart, all twelve would pass.
    assert answers[:10] == [200] * 10
    assert answers[10:] == [429, 429]
    refused = convert(replicas[0], keys[0])
    assert refused.status_code == 429
    assert refused.headers["X-RateLimit-Limit"] == "10"
    assert refused.headers["X-RateLimit-Remaining"] == "0"


def test_a_redis_outage_is_answered_503_not_500(make_server, redis_uri: str) -> None:
    port = int(redis_uri.rsplit(":", 1)[1].split("/")[0])
    replica = make_server(DOCJOBS_RATE_LIMITS__STORAGE_URI=redis_uri).start()
    key = replica.key("acme", plan="free")
    assert convert(replica, key).status_code == 200
    redis.Redis(port=port).shutdown(nosave=True)
    down = convert(replica, key)
    assert down.status_code == 503 and down.json()["error"]["code"] == "rate_limit_unavailable"
