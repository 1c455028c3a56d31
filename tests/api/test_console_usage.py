"""The console's usage view, in a real headless Chromium against a real embedded server:
the tenant's pages per day over 30 days as bars, and its totals, as the API reports them;
redrawn when a job the tab follows ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.api import test_console
from tests.api.test_console import needs_chromium, submit, wait, wait_for_job
from tests.docs import pdf_with_pages

browser = test_console.browser  # the same headless Chromium fixture

PLOT_HEIGHT = 120.0  # usage.js: the chart's height less its top and bottom margins


def usage_today(base: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """Today's pages and the 30 days' totals, as the API reports them."""
    today = datetime.now(UTC).date()
    params = {"from": str(today - timedelta(days=29)), "to": str(today), "group_by": "day"}
    report = requests.get(f"{base}/api/v1/usage", headers=headers, params=params, timeout=10)
    assert report.status_code == 200, report.text
    body = report.json()
    pages = {group["day"]: group["pages"] for group in body["groups"]}
    return pages.get(str(today), 0), body["totals"]


def bars(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """Each bar of the chart: its day, its value, its tooltip and the drawn height."""
    found: list[dict[str, Any]] = driver.execute_script(
        "return [...document.querySelectorAll('#usage-chart g.bar')].map((bar) => ({"
        " day: bar.dataset.day, pages: Number(bar.dataset.pages),"
        " title: bar.querySelector('title').textContent,"
        " height: bar.querySelector('rect').getBBox().height}))"
    )
    return found


def table(driver: webdriver.Chrome, table_id: str) -> dict[str, str]:
    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")
    cells = (row.find_elements(By.CSS_SELECTOR, "th, td") for row in rows)
    return {name.text: value.text for name, value in cells}


@needs_chromium
def test_usage_view_draws_the_pages_per_day_and_totals_the_api_reports(
    make_server, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    srv = make_server(
        DOCJOBS_RUNNER__CONCURRENCY="2",
        DOCJOBS_CEILINGS__MAX_CONVERT_PAGES="2",
        DOCJOBS_CEILINGS__INSPECT_SECONDS="60",  # a busy machine starts the inspector slowly
    ).start()
    key = srv.key("metered")
    headers = {"X-API-Key": key}

    def sent(path: str, **upload: Any) -> str:
        response = requests.post(
            f"{srv.base}{path}", headers=headers, params={"async": "true"}, timeout=60, **upload
        )
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])

    scan = pdf_with_pages(3, seed=17)[0]
    too_long = "\n".join(f"line {n}" for n in range(2000)).encode()
    for job_id in (
        sent("/api/v1/ocr/extract/simple", files={"file": ("scan.pdf", scan)}),
        sent("/api/v1/convert/text-to-pdf", data={"content": "a note"}),
        sent("/api/v1/convert/text-to-pdf", files={"file": ("long.txt", too_long)}),
    ):
        wait_for_job(srv.base, headers, job_id)
    pages, totals = usage_today(srv.base, headers)
    assert (totals["jobs"], totals["complete"], totals["failed"]) == (3, 2, 1), totals
    assert pages >= 4 and len(totals["pages_by_tier"]) == 2, totals  # 3 read, 1+ made

    browser.get(f"{srv.base}/console")
    browser.find_element(By.ID, "key").send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    state = browser.find_element(By.ID, "usage-state")
    wait(browser, lambda d: "pages in" in state.text)

    drawn = bars(browser)
    today = str(datetime.now(UTC).date())
    assert len(drawn) == 30 and drawn[-1]["day"] == today, drawn[-1]
    assert drawn[0]["day"] == str(datetime.now(UTC).date() - timedelta(days=29))
    assert drawn[-1]["pages"] == pages and drawn[-1]["title"] == f"{today}: {pages} pages"
    # Only today has pages: its bar fills the plot, every other day's is flat.
    assert abs(drawn[-1]["height"] - PLOT_HEIGHT) < 0.5, drawn[-1]
    assert all(bar["pages"] == 0 and bar["height"] == 0 for bar in drawn[:-1])
    jobs = {"complete": "2", "failed": "1", "cancelled": "0", "all": "3"}
    assert table(browser, "usage-jobs") == jobs
    by_tier = {tier: str(count) for tier, count in totals["pages_by_tier"].items()}
    assert table(browser, "usage-tiers") == {**by_tier, "all": str(totals["pages"])}
    assert state.text.startswith(f"{pages} pages in 3 jobs that ended from ")

    # A job this tab submits and follows: the view is redrawn once it has ended.
    notes = tmp_path / "notes.md"
    notes.write_text("# Usage\n\nOne more page.\n")
    wait_for_job(srv.base, headers, submit(browser, "convert:markdown", notes))
    more, totals = usage_today(srv.base, headers)
    assert more > pages
    wait(browser, lambda d: bars(d)[-1]["pages"] == more)
    assert table(browser, "usage-jobs")["all"] == "4"
    view = browser.find_element(By.ID, "usage-section")
    browser.execute_script("arguments[0].scrollIntoView()", view)
    assert view.screenshot(str(tmp_path / "usage.png"))
    problems = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not problems, problems  # a script or style the policy refused would be here

    browser.find_element(By.ID, "forget-key").click()
    assert not browser.find_elements(By.CSS_SELECTOR, "#usage-chart g.bar")
    assert state.text == "Enter an API key to see its usage."
