"""The API reference renders without internet: its pages load scripts and styles from docjobs,
under a Content-Security-Policy that allows those and nothing else."""

from __future__ import annotations

import re
import time

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.api.test_console import CHROMEDRIVER, CHROMIUM, needs_chromium

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


@pytest.mark.parametrize(
    ("page", "kinds"),
    [("/docs", {"javascript", "css", "image"}), ("/redoc", {"javascript", "image"})],
)
def test_reference_pages_use_only_assets_the_api_serves(server, page, kinds) -> None:
    response = requests.get(server.base + page, timeout=10)
    assert response.status_code == 200
    html = response.text
    assert "://" not in html, "the page names another host"
    assets = ASSET.findall(html)
    served = set()
    for path in assets:
        assert path.startswith("/") and not path.startswith("//"), path
        asset = requests.get(server.base + path, timeout=10)
        assert asset.status_code == 200, path
        assert len(asset.content) > 1000, path
        served.add(
            next(k for k in ("javascript", "css", "image") if k in asset.headers["content-type"])
        )
    assert served == kinds
    assert requests.get(server.base + "/openapi.json", timeout=10).json()["info"]["title"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_reference_pages_carry_a_content_security_policy(server, page) -> None:
    response = requests.get(server.base + page, timeout=10)
    policy = response.headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert directives["default-src"] == ["'self'"]
    assert directives["connect-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    # Scripts from this server only, inline ones by their hash: never any inline script.
    assert "'unsafe-inline'" not in directives["script-src"]
    assert "'unsafe-eval'" not in directives["script-src"]
    assert all(s == "'self'" or s.startswith("'sha256-") for s in directives["script-src"])
    assert response.headers["x-content-type-options"] == "nosniff"


@needs_chromium
@pytest.mark.parametrize(
    ("page", "rendered"),
    [
        ("/docs", ".opblock-summary-path"),  # one row per operation
        ("/redoc", "[data-section-id^='tag/']"),  # the operations' sections
    ],
)
def test_reference_pages_render_under_their_policy(server, page, rendered) -> None:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.get(server.base + page)
        WebDriverWait(driver, 60, poll_frequency=0.2).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, rendered)) >= 5
        )
        time.sleep(1)  # a late violation (a worker, a style) is logged too
        refused = [
            entry["message"]
            for entry in driver.get_log("browser")
            if "Content Security Policy" in entry["message"] or "Refused to" in entry["message"]
        ]
        # What the pages need is allowed; what they would fetch from another host (ReDoc's
        # credit logo) is refused, as it should be.
        elsewhere = re.compile(r"Loading the \w+ 'https?://(?!127\.0\.0\.1[:/])")
        assert not [message for message in refused if not elsewhere.search(message)], refused
    finally:
        driver.quit()
