"""The jobs API document's own Python polling workflow, run unchanged but for BASE, key and file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.docs import pdf_with_pages

DOCUMENTED_CLIENT = """
import requests
import time

API_KEY = "{key}"
BASE = "{base}"
HEADERS = {{"X-API-Key": API_KEY}}

# Step 1: Submit a large PDF for OCR (async)
with open("{path}", "rb") as f:
    files = {{"file": ("{name}", f, "application/pdf")}}
    data = {{"output": "simple"}}
    response = requests.post(
        f"{{BASE}}/api/v1/ocr/extract/simple?async=true",
        headers=HEADERS,
        files=files,
        data=data,
    )

job = response.json()
job_id = job["job_id"]
print(f"Job submitted: {{job_id}}")
print(f"Status: {{job['status']}}")

# Step 2: Poll for completion
while True:
    status_response = requests.get(
        f"{{BASE}}/api/v1/jobs/{{job_id}}",
        headers=HEADERS,
    )
    status = status_response.json()
    print(f"Status: {{status['status']}}")

    if status["status"] == "complete":
        print("Job complete!")
        break
    elif status["status"] == "failed":
        print(f"Job failed")
        exit(1)
    elif status["status"] == "cancelled":
        print("Job was cancelled")
        exit(1)

    # Wait 2 seconds before polling again
    time.sleep(2)

# Step 3: Download the result
result_response = requests.get(
    f"{{BASE}}/api/v1/jobs/{{job_id}}/result",
    headers=HEADERS,
)

result = result_response.json()
print(f"Extracted text ({{result['data']['word_count']}} words):")
print(result["data"]["text"][:500])
"""


def test_documented_polling_workflow_prints_the_word_count(server, api_key, tmp_path: Path) -> None:
    pdf, texts = pdf_with_pages(3, seed=7)
    document = tmp_path / "scanned-3-pages.pdf"
    document.write_bytes(pdf)
    script = tmp_path / "client.py"
    script.write_text(
        DOCUMENTED_CLIENT.format(key=api_key, base=server.base, path=document, name=document.name)
    )

    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "Job complete!" in run.stdout
    words = int(re.search(r"Extracted text \((\d+) words\)", run.stdout).group(1))
    expected = sum(len(line.split()) for page in texts for line in page)
    assert words == expected
    assert texts[0][0].split()[0] in run.stdout
