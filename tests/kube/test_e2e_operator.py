"""End to end in kubernetes mode: API -> DocumentJob -> operator -> Job -> pod on the rig's
kubelet -> runner -> MinIO -> API, driven by the jobs API's own polling client."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.api.test_jobs_api_client import DOCUMENTED_CLIENT
from tests.docs import pdf_with_pages

from .conftest import Operator


def test_documented_polling_workflow_on_kubernetes(
    kube_server, operator: Operator, tmp_path: Path
) -> None:
    pdf, texts = pdf_with_pages(3, seed=7)
    document = tmp_path / "scanned-3-pages.pdf"
    document.write_bytes(pdf)
    script = tmp_path / "client.py"
    key = kube_server.key("acme")
    script.write_text(
        DOCUMENTED_CLIENT.format(key=key, base=kube_server.base, path=document, name=document.name)
    )

    output = tmp_path / "client.out"
    with output.open("wb") as out:
        client = subprocess.Popen([sys.executable, str(script)], stdout=out, stderr=out)
    deadline = time.monotonic() + 300
    try:
        while client.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail(f"the documented client timed out:\n{output.read_text()[-2000:]}")
            operator.check_alive()
            time.sleep(0.5)
    finally:
        client.kill()
        client.wait()
    printed = output.read_text()

    assert client.returncode == 0, printed
    assert "Job complete!" in printed
    words = int(re.search(r"Extracted text \((\d+) words\)", printed).group(1))
    assert words == sum(len(line.split()) for page in texts for line in page)
