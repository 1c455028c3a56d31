"""Plans come from the settings: a key can have exactly those, and gets its plan's rate."""

from __future__ import annotations

import json
import os
import subprocess

import requests

from tests.conftest import BIN

PLANS = {"free": "10/minute", "team": "3/minute"}


def test_a_plan_added_in_the_settings_can_be_given_to_a_key_and_its_rate_applies(
    make_server,
) -> None:
    env = {"DOCJOBS_RATE_LIMITS__PLANS": json.dumps(PLANS), "DOCJOBS_RUNNER__CONCURRENCY": "1"}
    server = make_server(**env).start()

    def keys(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "docjobs"), "keys", *args, "--data-dir", str(server.data_dir)],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
        )

    # Made as an operator makes one: the command prints the key alone on its last line.
    made = keys("create", "--tenant", "crew", "--plan", "team")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    answers = [
        requests.post(
            f"{server.base}/api/v1/convert/text-to-pdf?async=true",
            headers={"X-API-Key": key},
            data={"content": f"request {n}"},
            timeout=30,
        )
        for n in range(4)
    ]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    assert answers[0].headers["X-RateLimit-Limit"] == "3"
    assert "'team'" in answers[3].json()["error"]["message"]

    # A plan of the defaults that these settings dropped is refused, with the ones there are.
    refused = keys("create", "--tenant", "crew", "--plan", "business")
    assert refused.returncode == 2
    assert "'business'" in refused.stderr and "free, team" in refused.stderr
    # The key of the first start has a plan these settings define too.
    listed = keys("list").stdout.splitlines()
    assert sorted(line.split()[1:3] for line in listed) == [["crew", "team"], ["default", "free"]]
