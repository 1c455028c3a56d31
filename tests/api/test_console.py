"""The web console at ``/console``, in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``) against a real embedded server: key entry, uploads, a job's status
changing live, download, cancel; and a screenshot for the README (into the directory that
``DOCJOBS_SCREENSHOTS`` names, else the test's temp dir)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.docs import pdf_with_pages

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver)",
)
JOB_ID = re.compile(r"(job_\w+): Job queued for processing\.")
SCAN_PAGES = 6

# Every status and progress text each job's row shows, in order, as the page changes it.
RECORDER = """
window.seen = {};
const record = () => {
  for (const row of document.querySelectorAll("#jobs tbody tr")) {
    const job = (window.seen[row.dataset.job] ??= {status: [], progress: []});
    for (const what of ["status", "progress"]) {
      const text = row.querySelector("." + what).textContent.trim();
      if (text && job[what].at(-1) !== text) job[what].push(text);
    }
  }
};
record();
new MutationObserver(record).observe(
  document.querySelector("#jobs tbody"), {childList: true, subtree: true, characterData: true});
"""


def test_console_loads_without_a_key_under_a_strict_policy(server, api_key) -> None:
    redirect = requests.get(f"{server.base}/console", allow_redirects=False, timeout=10)
    assert redirect.status_code == 307
    assert redirect.headers["location"] == "console/"
    for path in ("/", "/console"):
        # The server's root is where a person starts; HEAD answers as GET does.
        assert requests.head(server.base + path, timeout=10).status_code == 307, path
    page = requests.get(f"{server.base}/", timeout=10)
    assert page.url.endswith("/console/")
    page = requests.get(f"{server.base}/console", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "://" not in html, "the page names another host"
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "an inline script"
    assert not re.search(r"\s(style|on\w+)=", html), "an inline style or handler"
    for path, kind in (
        ("/console/", "text/html"),
        ("/console/console.js", "javascript"),
        ("/console/usage.js", "javascript"),
        ("/console/console.css", "text/css"),
        ("/console/favicon.svg", "image/svg+xml"),
    ):
        response = requests.get(server.base + path, timeout=10)
        assert response.status_code == 200, path
        assert kind in response.headers["content-type"], path
        policy = response.headers["content-security-policy"]
        for directive in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"):
            assert directive in policy, (path, policy)
        assert response.headers["x-content-type-options"] == "nosniff"

    assert requests.get(f"{server.base}/console/nothing.js", timeout=10).status_code == 404
    # The key gate still stands before every body, here too; the files are only read.
    assert requests.post(f"{server.base}/console/", data=b"x", timeout=10).status_code == 401
    written = requests.post(
        f"{server.base}/console/", data=b"x", headers={"X-API-Key": api_key}, timeout=10
    )
    assert (written.status_code, written.headers["allow"]) == (405, "GET, HEAD")
    document = requests.get(f"{server.base}/openapi.json", timeout=10).json()
    assert not [path for path in document["paths"] if path.startswith("/console")]
    assert requests.get(f"{server.base}/api/v1/jobs", timeout=10).status_code == 401


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # --no-sandbox: containers give Chromium no user namespaces for its sandbox.
    for argument in ("--headless=new", "--no-sandbox", "--window-size=1400,900"):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(tmp_path / "downloads"),
            "download.prompt_for_download": False,
        },
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver's own path: Selenium Manager never looks for (or downloads) one.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def wait(driver: webdriver.Chrome, until: Callable[[webdriver.Chrome], Any], seconds: float = 60):
    return WebDriverWait(
        driver, seconds, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    ).until(until)


def submit(driver: webdriver.Chrome, route: str, document: Path) -> str:
    """Sends ``document`` to ``route`` through the form; the id of the job it made."""
    state = driver.find_element(By.ID, "submit-state")
    before = state.text
    Select(driver.find_element(By.ID, "route")).select_by_value(route)
    driver.find_element(By.ID, "file").send_keys(str(document))
    driver.find_element(By.CSS_SELECTOR, "#submit-form button[type=submit]").click()
    wait(driver, lambda d: state.text != before and not state.text.startswith("Sending"))
    found = JOB_ID.fullmatch(state.text)
    assert found, state.text
    return found.group(1)


def click(driver: webdriver.Chrome, job_id: str, label: str) -> None:
    """Clicks a button of the job's row (rows are redrawn as jobs change: found afresh)."""
    xpath = f"//tr[@data-job='{job_id}']//button[text()='{label}']"

    def clicked(d: webdriver.Chrome) -> bool:
        d.find_element(By.XPATH, xpath).click()
        return True

    wait(driver, clicked)


def status_in_row(driver: webdriver.Chrome, job_id: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, f"tr[data-job='{job_id}'] .status").text)


def in_view(driver: webdriver.Chrome, element_id: str) -> bool:
    """Whether the element's top shows in the window, as it is scrolled now (to a pixel:
    scrolling to an element leaves it a fraction of one off)."""
    return bool(
        driver.execute_script(
            "const box = document.getElementById(arguments[0]).getBoundingClientRect();"
            "return box.height > 0 && box.top > -1 && box.top < window.innerHeight - 40;",
            element_id,
        )
    )


def row_cells(driver: webdriver.Chrome, job_id: str) -> dict[str, str]:
    """The job's row, cell by cell, under the table's headers."""
    # Read in one script: the console redraws the table as it polls, and an element found
    # in one call can be gone by the next.
    headers, cells = driver.execute_script(
        "const text = (q) => [...document.querySelectorAll(q)].map((e) => e.innerText.trim());"
        "return [text('#jobs thead th'), text(`tr[data-job='${arguments[0]}'] td`)];",
        job_id,
    )
    return {name: cell for name, cell in zip(headers, cells, strict=True) if name}


def downloaded(folder: Path, suffix: str) -> Path:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = [p for p in folder.glob(f"*{suffix}")] if folder.exists() else []
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} in {folder}")


@needs_chromium
def test_console_submits_follows_downloads_and_cancels_jobs(
    make_server, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    # Two workers, each busy with a scan read 2 pages at a time: a scan's progress rises in
    # steps, and the jobs behind the scans wait for a worker.
    srv = make_server(DOCJOBS_RUNNER__CONCURRENCY="2", DOCJOBS_RUNNER__PART_PAGES="2").start()
    key = srv.key("console")
    scans = [tmp_path / f"scan{n}.pdf" for n in range(3)]
    for n, scan in enumerate(scans):  # different pages: not duplicates of one another
        scan.write_bytes(pdf_with_pages(SCAN_PAGES, seed=5 + n)[0])
    notes = tmp_path / "notes.md"
    notes.write_text("# Release notes\n\n- faster OCR\n- a web console\n")

    browser.get(f"{srv.base}/console")
    browser.find_element(By.ID, "key").send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    wait(browser, lambda d: d.find_element(By.ID, "key-state").text == "Key accepted.")
    assert browser.execute_script(f"return sessionStorage.getItem({json.dumps('docjobs.apiKey')})")
    assert browser.execute_script("return localStorage.length") == 0
    browser.execute_script(RECORDER)

    scan_job = submit(browser, "ocr:simple", scans[0])
    submit(browser, "ocr:simple", scans[1])
    notes_job = submit(browser, "convert:markdown", notes)
    waiting_job = submit(browser, "ocr:simple", scans[2])

    wait(browser, lambda d: status_in_row(d, waiting_job) == "pending")
    click(browser, waiting_job, "Cancel")
    wait(browser, lambda d: status_in_row(d, waiting_job) == "cancelled")
    headers = {"X-API-Key": key}
    cancelled = requests.get(f"{srv.base}/api/v1/jobs/{waiting_job}", headers=headers).json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["started_at"] is None, "it was cancelled while it waited"

    for job_id in (notes_job, scan_job):
        wait(browser, lambda d, job_id=job_id: status_in_row(d, job_id) == "complete", 240)
    seen = browser.execute_script("return window.seen")  # kept: the page never reloaded
    assert seen[notes_job]["status"][0] == "pending", seen[notes_job]
    assert seen[notes_job]["status"][-1] == "complete", seen[notes_job]
    assert seen[scan_job]["status"][-1] == "complete", seen[scan_job]
    progress = seen[scan_job]["progress"]
    assert progress[-1] == f"{SCAN_PAGES}/{SCAN_PAGES} pages", progress
    assert len(progress) > 1, f"the scan's pages were not shown as they were read: {progress}"

    click(browser, notes_job, "Download")
    pdf = downloaded(tmp_path / "downloads", ".pdf")
    result = requests.get(f"{srv.base}/api/v1/jobs/{notes_job}/result", headers=headers)
    assert pdf.read_bytes() == result.content
    assert pdf.read_bytes().startswith(b"%PDF")
    click(browser, scan_job, "Download")
    text = json.loads(downloaded(tmp_path / "downloads", ".json").read_text())
    assert text["data"]["page_count"] == SCAN_PAGES

    browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    click(browser, scan_job, "Details")
    wait(browser, lambda d: d.find_element(By.ID, "deliveries-state").text == "None.")
    assert in_view(browser, "detail"), "the details opened out of sight"
    fields = browser.find_element(By.ID, "detail-fields").text
    assert "Attempts\n1" in fields and "File\nscan0.pdf" in fields, fields

    folder = Path(os.environ.get("DOCJOBS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(folder / "console.png"))

    urls = browser.execute_script(
        "return performance.getEntriesByType('resource').map((entry) => entry.name)"
    )
    assert urls and not [url for url in urls if key in url], "the key went into a URL"
    problems = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not problems, problems  # a script or style the policy refused would be here

    browser.find_element(By.ID, "forget-key").click()
    assert browser.execute_script("return sessionStorage.length") == 0
    assert not browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")


@needs_chromium
def test_console_shows_jobs_sent_elsewhere_their_failures_and_pages(
    make_server, browser: webdriver.Chrome
) -> None:
    """Jobs submitted with an HTTP client, not in this tab: the list shows their file, pages
    and failure reason from the API alone, a page at a time."""
    srv = make_server(
        DOCJOBS_RUNNER__CONCURRENCY="2",
        DOCJOBS_CEILINGS__MAX_CONVERT_PAGES="2",
        # The scan is inspected in a child process: slow to start on a busy machine.
        DOCJOBS_CEILINGS__INSPECT_SECONDS="60",
    ).start()
    key = srv.key("elsewhere")
    headers = {"X-API-Key": key}

    def sent(path: str, **upload: Any) -> str:
        response = requests.post(
            f"{srv.base}{path}", headers=headers, params={"async": "true"}, timeout=60, **upload
        )
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])

    older = [sent("/api/v1/convert/text-to-pdf", data={"content": f"note {n}"}) for n in range(20)]
    scan = pdf_with_pages(3, seed=41)[0]
    scan_job = sent("/api/v1/ocr/extract/simple", files={"file": ("outside.pdf", scan)})
    too_long = "\n".join(f"line {n}" for n in range(2000))
    failed_job = sent(
        "/api/v1/convert/text-to-pdf", files={"file": ("long.txt", too_long.encode())}
    )
    for job_id in (*older, scan_job, failed_job):
        wait_for_job(srv.base, headers, job_id)
    failure = requests.get(f"{srv.base}/api/v1/jobs/{failed_job}", headers=headers).json()
    assert failure["status"] == "failed", failure

    browser.get(f"{srv.base}/console")
    browser.find_element(By.ID, "key").send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    wait(browser, lambda d: d.find_element(By.ID, "key-state").text == "Key accepted.")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"tr[data-job='{scan_job}']"))

    scan_row = row_cells(browser, scan_job)
    assert scan_row["File"] == "outside.pdf", scan_row
    assert scan_row["Progress"] == "3/3 pages", scan_row
    assert scan_row["Status"] == "complete" and not scan_row["Reason"], scan_row
    failed_row = row_cells(browser, failed_job)
    assert failed_row["File"] == "long.txt", failed_row
    assert failed_row["Reason"] == f"{failure['error']['code']}: {failure['error']['message']}"
    assert "DOCJOBS_CEILINGS__MAX_CONVERT_PAGES" in failed_row["Reason"]

    # 22 jobs, 20 a page, newest first: the two newest and 18 notes, then the 2 oldest.
    def shown(d: webdriver.Chrome) -> list[str]:
        rows: list[str] = d.execute_script(
            "return [...document.querySelectorAll('#jobs tbody tr')].map((r) => r.dataset.job)"
        )
        return rows

    first_page = shown(browser)
    assert first_page == [failed_job, scan_job, *older[::-1][:18]]
    assert browser.find_element(By.ID, "jobs-state").text == "Jobs 1-20 of 22, newest first."
    assert not browser.find_element(By.ID, "previous-page").is_enabled()
    browser.find_element(By.ID, "next-page").click()
    wait(browser, lambda d: shown(d) == older[1::-1])
    assert browser.find_element(By.ID, "jobs-state").text == "Jobs 21-22 of 22, newest first."
    assert not browser.find_element(By.ID, "next-page").is_enabled()
    assert row_cells(browser, older[0])["File"], "a conversion's row names its file too"
    browser.find_element(By.ID, "previous-page").click()
    wait(browser, lambda d: shown(d) == first_page)

    # Every row's buttons within the window: nothing to scroll sideways for.
    overflow = browser.execute_script(
        "const list = document.getElementById('jobs-section');"
        "return Math.max(list.scrollWidth - list.clientWidth,"
        " document.documentElement.scrollWidth - document.documentElement.clientWidth)"
    )
    assert overflow <= 0, f"the job list is {overflow} px wider than the window"
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    click(browser, failed_job, "Details")
    wait(browser, lambda d: "Error" in d.find_element(By.ID, "detail-fields").text)
    assert in_view(browser, "detail"), "the details opened out of sight"
    problems = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not problems, problems


def wait_for_job(base: str, headers: dict[str, str], job_id: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(f"{base}/api/v1/jobs/{job_id}", headers=headers, timeout=10).json()
        if job["status"] in ("complete", "failed", "cancelled"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{job_id} never ended")
