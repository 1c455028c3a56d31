"""The tier checks on their own: what each missing part is reported as, and the fix named."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from docjobs import capabilities
from docjobs.capabilities import CapabilityCache, check
from docjobs.config import DoctrSettings, LlmSettings, Settings


def settings(tmp_path: Path, **overrides: object) -> Settings:
    given: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "doctr": DoctrSettings(weights_dir=tmp_path / "weights"),
        "llm": LlmSettings(api_key=""),
    }
    return Settings(**{**given, **overrides})  # type: ignore[arg-type]


def test_without_the_doctr_extra_the_fix_installs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        capabilities.importlib.util,
        "find_spec",
        lambda name, *args: None if name == "torch" else real(name, *args),
    )
    advanced = check(settings(tmp_path)).tier("advanced")
    assert not advanced.available
    assert "doctr extra" in advanced.reason
    assert advanced.fix == (
        f"make setup EXTRAS=doctr, then docjobs models fetch --dir {tmp_path / 'weights'}"
    )


def test_weights_are_found_by_release_name_and_a_missing_one_is_named(tmp_path: Path) -> None:
    if not capabilities.doctr_extra_installed():
        pytest.skip("the doctr extra is not installed")
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "db_resnet50-79bd7d70.pt").write_bytes(b"stand-in")
    advanced = check(settings(tmp_path)).tier("advanced")
    assert not advanced.available
    assert "crnn_vgg16_bn" in advanced.reason and "db_resnet50" not in advanced.reason
    assert str(weights) in advanced.reason
    (weights / "crnn_vgg16_bn.pt").write_bytes(b"stand-in")
    assert check(settings(tmp_path)).tier("advanced").available


def test_a_claude_key_makes_vision_and_llm_available(tmp_path: Path) -> None:
    found = check(settings(tmp_path, llm=LlmSettings(api_key="k", base_url="http://gw")))
    for name in ("vision", "llm"):
        assert found.tier(name).available
        assert "http://gw" in found.tier(name).reason


def test_in_kubernetes_mode_the_runner_pods_decide(tmp_path: Path) -> None:
    found = check(settings(tmp_path, backend="kubernetes"))
    assert all(tier.available for tier in found.tiers.values())


def test_the_cache_checks_again_once_stale(tmp_path: Path) -> None:
    now = [0.0]
    cache = CapabilityCache(settings(tmp_path), max_age_seconds=5, clock=lambda: now[0])
    assert cache.fresh() is None
    first = cache.refresh()
    assert cache.fresh() is first
    now[0] = 6.0
    assert cache.fresh() is None
    assert cache.refresh() is not first
