"""The API reference renders without internet: its pages load scripts and styles from docjobs."""

from __future__ import annotations

import re

import pytest
import requests

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
