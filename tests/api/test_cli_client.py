"""The ``docjobs`` client commands (submit, jobs, templates, webhooks) against a real embedded
server."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, Server
from tests.docs import INVOICE_TEMPLATE, pdf_with_pages
from tests.receivers import serve as serve_http

LLM_REFUSAL = json.dumps(
    {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
).encode()

REPO = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def srv(make_server):
    return make_server(DOCJOBS_RUNNER__CONCURRENCY="2", DOCJOBS_RUNNER__PART_PAGES="1").start()


def docjobs(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "docjobs"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def in_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Runs ``docjobs`` with a pseudo-terminal as stdout and stderr: what a user's screen gets."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [str(BIN / "docjobs"), *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env={**os.environ, **env, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(follower)
    screen = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closes when the command ends
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    return process.wait(timeout=300), screen.decode("utf-8", "replace")


def test_submit_waits_with_a_page_bar_per_job_and_one_for_all(srv, tmp_path: Path) -> None:
    scans = {"six.pdf": 6, "three.pdf": 3}
    for name, pages in scans.items():
        (tmp_path / name).write_bytes(pdf_with_pages(pages, seed=pages)[0])
    env = {"DOCJOBS_URL": srv.base, "DOCJOBS_API_KEY": srv.key("cli")}
    files = [str(tmp_path / name) for name in scans]
    code, screen = in_terminal(["submit", *files, "--op", "ocr", "--wait"], env)
    assert code == 0, screen
    assert "\x1b[?25l" in screen, "no live display: the bars were not drawn in the terminal"
    frames = ANSI.sub("", screen).replace("\r", "\n").splitlines()
    six = [int(m[1]) for line in frames if (m := re.search(r"six\.pdf.* (\d+)/6 pages", line))]
    assert six == sorted(six) and six[-1] == 6, six
    assert len(set(six)) > 1, f"the bar never moved before the end: {six}"
    assert any(re.search(r"three\.pdf.* 3/3 pages\s+complete", line) for line in frames)
    assert any(re.search(r"all files.* 2/2 files", line) for line in frames)


def test_exit_codes_and_the_reason_of_a_failed_job(make_server, tmp_path: Path) -> None:
    # The language model stand-in refuses the key: every job of an llm template fails for good.
    with serve_http([(401, {}, LLM_REFUSAL)]) as refusing:
        srv = make_server(
            DOCJOBS_LLM__BASE_URL=refusing.url, DOCJOBS_LLM__API_KEY="refused-key"
        ).start()
        _exit_codes_and_the_reason_of_a_failed_job(srv, tmp_path)


def _exit_codes_and_the_reason_of_a_failed_job(srv: Server, tmp_path: Path) -> None:
    key = srv.key("cli")
    where = ["--url", srv.base, "--key", key]
    spec = tmp_path / "invoice.yaml"
    spec.write_text(yaml.safe_dump({**INVOICE_TEMPLATE, "engine": "llm"}))
    created = docjobs("templates", "apply", str(spec), *where)
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("Created")
    template_id, name = created.stdout.splitlines()[-1].split()
    assert name == "invoice"

    scan = tmp_path / "scan.pdf"
    scan.write_bytes(pdf_with_pages(1, seed=5)[0])
    failed = docjobs(
        "submit", str(scan), "--op", "parse", "--template", template_id, "--wait", *where
    )
    assert failed.returncode == 1
    assert re.search(r"scan\.pdf: job job_\w+ failed: \w+: .+", failed.stderr), failed.stderr

    spec.write_text(json.dumps(INVOICE_TEMPLATE))
    spec = spec.rename(tmp_path / "invoice.json")
    replaced = docjobs("templates", "apply", str(spec), *where)
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout.splitlines() == ["Replaced template:", f"{template_id}  invoice"]
    parsed = docjobs(
        "submit", str(scan), "--op", "parse", "--template", template_id, "--wait", *where
    )
    assert parsed.returncode == 0, parsed.stderr

    no_template = docjobs("submit", str(scan), "--op", "parse", *where)
    assert no_template.returncode == 2 and "--template" in no_template.stderr
    missing = docjobs("submit", str(tmp_path / "none.pdf"), "--op", "ocr", *where)
    assert missing.returncode == 1 and "none.pdf: refused: no such file" in missing.stderr
    wrong_key = docjobs("jobs", "list", "--url", srv.base, "--key", "dj_wrong")
    assert wrong_key.returncode == 1 and "invalid_api_key" in wrong_key.stderr
    bad_spec = tmp_path / "bad.yaml"
    bad_spec.write_text("- just\n- a list\n")
    assert docjobs("templates", "apply", str(bad_spec), *where).returncode == 2


def test_submit_sends_every_acceptable_file_and_names_each_refusal(srv, tmp_path: Path) -> None:
    where = ("--url", srv.base, "--key", srv.key("batch"))
    good, good2, bad = tmp_path / "good.pdf", tmp_path / "good2.pdf", tmp_path / "bad.docx"
    good.write_bytes(pdf_with_pages(1, seed=11)[0])
    good2.write_bytes(pdf_with_pages(1, seed=12)[0])
    bad.write_bytes(b"PK\x03\x04 a word document, not a scan" * 10)

    done = docjobs("submit", str(good), str(bad), str(good2), "--op", "ocr", *where)

    assert done.returncode == 1, done.stdout + done.stderr
    accepted = [line.split() for line in done.stdout.splitlines()]
    assert [path for path, _ in accepted] == [str(good), str(good2)]
    assert all(job_id.startswith("job_") for _, job_id in accepted)
    assert re.fullmatch(rf"{re.escape(str(bad))}: refused: \w+: .+", done.stderr.strip())


def test_jobs_list_get_result_and_cancel(srv, tmp_path: Path) -> None:
    env = {"DOCJOBS_URL": srv.base, "DOCJOBS_API_KEY": srv.key("cli")}
    page = tmp_path / "page.html"
    page.write_text("<h1>Hello from the command line</h1>")
    submitted = docjobs("submit", str(page), "--op", "convert", "--wait", env=env)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.split()[-1]

    shown = docjobs("jobs", "get", job_id, env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "complete"
    pdf = tmp_path / "page.pdf"
    assert docjobs("jobs", "result", job_id, "-o", str(pdf), env=env).returncode == 0
    assert pdf.read_bytes().startswith(b"%PDF")

    long = tmp_path / "long.pdf"
    long.write_bytes(pdf_with_pages(20, seed=9)[0])
    queued = docjobs("submit", str(long), "--op", "ocr", env=env)
    assert queued.returncode == 0, queued.stderr
    long_id = queued.stdout.split()[-1]
    cancelled = docjobs("jobs", "cancel", long_id, env=env)
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"Cancelled {long_id}"
    finished = docjobs("jobs", "cancel", job_id, env=env)
    assert finished.returncode == 1 and "job_finished" in finished.stderr
    unfinished = docjobs("jobs", "result", long_id, env=env)
    assert unfinished.returncode == 1 and "job_not_complete" in unfinished.stderr

    listed = docjobs("jobs", "list", "--status", "complete", env=env)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["ID", "STATUS", "OPERATION", "FILE", "PAGES", "CREATED", "REASON"]
    assert [line.split()[:4] for line in rows] == [[job_id, "complete", "convert", "page.html"]]
    assert rows[0].index("page.html") == header.index("FILE"), "columns aligned"
    deadline = time.monotonic() + 60
    while json.loads(docjobs("jobs", "get", long_id, env=env).stdout)["status"] != "cancelled":
        assert time.monotonic() < deadline, "the cancelled job never stopped"
        time.sleep(0.5)
    cancelled_rows = docjobs("jobs", "list", "--status", "cancelled", env=env).stdout
    assert cancelled_rows.splitlines()[1].split()[:2] == [long_id, "cancelled"]

    first = docjobs("jobs", "list", "--limit", "1", env=env)
    assert len(first.stdout.splitlines()) == 2 and "--cursor " in first.stderr, first.stderr
    cursor = first.stderr.split("--cursor ")[-1].strip()
    second = docjobs("jobs", "list", "--limit", "1", "--cursor", cursor, env=env)
    assert second.stdout.splitlines()[1].split()[0] == job_id and "--cursor" not in second.stderr
    every = docjobs("jobs", "list", "--limit", "1", "--all", env=env)
    assert [line.split()[0] for line in every.stdout.splitlines()[1:]] == [long_id, job_id]

    erased = docjobs("jobs", "delete", job_id, env=env)
    assert erased.returncode == 0 and erased.stdout.strip() == f"Erased {job_id}"
    unknown = docjobs("jobs", "get", job_id, env=env)
    assert unknown.returncode == 1 and "job_not_found" in unknown.stderr


def test_webhooks_create_list_and_delete(srv) -> None:
    env = {"DOCJOBS_URL": srv.base, "DOCJOBS_API_KEY": srv.key("cli")}
    every = docjobs("webhooks", "create", "https://hooks.example.com/all", env=env)
    assert every.returncode == 0, every.stderr
    heading, created, secret = every.stdout.splitlines()
    assert heading == "Created webhook endpoint:"
    every_id, url, events = created.split()
    assert url == "https://hooks.example.com/all"
    assert events == "job.completed,job.failed,job.cancelled"
    assert re.fullmatch(r"secret: \S{16,}", secret), secret
    failures = docjobs(
        "webhooks",
        "create",
        "https://hooks.example.com/failures",
        "--event",
        "job.failed",
        "--event",
        "job.cancelled",
        "--description",
        "on call",
        env=env,
    )
    assert failures.returncode == 0, failures.stderr
    failures_id = failures.stdout.splitlines()[1].split()[0]

    listed = docjobs("webhooks", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.splitlines()) == sorted(
        [
            f"{every_id}  https://hooks.example.com/all  job.completed,job.failed,job.cancelled",
            f"{failures_id}  https://hooks.example.com/failures  job.failed,job.cancelled  on call",
        ]
    )
    other_tenant = docjobs("webhooks", "list", "--key", srv.key("other"), env=env)
    assert other_tenant.returncode == 0 and other_tenant.stdout == ""

    deleted = docjobs("webhooks", "delete", every_id, env=env)
    assert deleted.returncode == 0 and deleted.stdout.strip() == f"Deleted {every_id}"
    assert docjobs("webhooks", "list", env=env).stdout.split()[0] == failures_id
    again = docjobs("webhooks", "delete", every_id, env=env)
    assert again.returncode == 1 and "webhook_not_found" in again.stderr

    unsafe = docjobs("webhooks", "create", "http://127.0.0.1:9/hook", env=env)
    assert unsafe.returncode == 1 and "unsafe_webhook_url" in unsafe.stderr, unsafe.stderr
    unknown = docjobs(
        "webhooks", "create", "https://hooks.example.com/x", "--event", "job.eaten", env=env
    )
    assert unknown.returncode == 1 and "invalid_webhook" in unknown.stderr, unknown.stderr


def test_webhooks_update_changes_only_what_is_given(srv) -> None:
    env = {"DOCJOBS_URL": srv.base, "DOCJOBS_API_KEY": srv.key("cli")}
    created = docjobs(
        "webhooks", "create", "https://hooks.example.com/a", "--description", "ops", env=env
    )
    assert created.returncode == 0, created.stderr
    endpoint_id = created.stdout.splitlines()[1].split()[0]

    events = docjobs("webhooks", "update", endpoint_id, "--event", "job.failed", env=env)
    assert events.returncode == 0, events.stderr
    assert events.stdout.splitlines() == [
        "Updated webhook endpoint:",
        f"{endpoint_id}  https://hooks.example.com/a  job.failed  ops",
    ]
    moved = docjobs(
        "webhooks",
        "update",
        endpoint_id,
        "https://hooks.example.com/b",
        "--description",
        "",
        env=env,
    )
    assert moved.returncode == 0, moved.stderr
    line = f"{endpoint_id}  https://hooks.example.com/b  job.failed"
    assert moved.stdout.splitlines()[1] == line
    assert docjobs("webhooks", "list", env=env).stdout.splitlines() == [line]

    nothing = docjobs("webhooks", "update", endpoint_id, env=env)
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr, nothing.stderr
    unsafe = docjobs("webhooks", "update", endpoint_id, "http://127.0.0.1:9/hook", env=env)
    assert unsafe.returncode == 1 and "unsafe_webhook_url" in unsafe.stderr, unsafe.stderr
    other_tenant = docjobs(
        "webhooks",
        "update",
        endpoint_id,
        "--event",
        "job.completed",
        "--key",
        srv.key("other"),
        env=env,
    )
    assert other_tenant.returncode == 1 and "webhook_not_found" in other_tenant.stderr
    assert docjobs("webhooks", "list", env=env).stdout.splitlines() == [line]


def test_templates_apply_a_resource_then_list_get_and_delete(srv) -> None:
    where = ("--url", srv.base, "--key", srv.key("templater"))
    example = REPO / "charts" / "docjobs" / "examples" / "templates" / "invoice.yaml"

    created = docjobs("templates", "apply", str(example), *where)
    assert created.returncode == 0, created.stderr
    template_id, name = created.stdout.splitlines()[-1].split()
    assert name == "Invoice"
    again = docjobs("templates", "apply", str(example), *where)
    assert again.stdout.splitlines() == ["Replaced template:", f"{template_id}  Invoice"]

    listed = docjobs("templates", "list", *where).stdout.splitlines()
    assert listed[0].split() == ["ID", "NAME", "FIELDS", "UPDATED"]
    assert [row.split()[:3] for row in listed[1:]] == [[template_id, "Invoice", "4"]]
    shown = json.loads(docjobs("templates", "get", template_id, *where).stdout)
    assert shown["fields"][0]["name"] == "invoice.number"

    assert docjobs("templates", "delete", template_id, *where).returncode == 0
    assert docjobs("templates", "list", *where).stdout.splitlines()[1:] == []
    gone = docjobs("templates", "get", template_id, *where)
    assert gone.returncode == 1 and "template_not_found" in gone.stderr, gone.stderr
