"""The verified-key cache: keys are trusted for ``ttl`` seconds, never longer, in bounded memory."""

from __future__ import annotations

from docjobs.auth.cache import VerifiedKeyCache
from docjobs.auth.keys import Principal

ACME = Principal(tenant="acme", plan="business", key_id="0123456789ab")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_trusted_for_the_ttl_and_then_asked_about_again() -> None:
    clock = Clock()
    cache = VerifiedKeyCache(ttl=5, clock=clock)
    cache.put("dj_key", ACME)
    clock.now += 4.9
    assert cache.get("dj_key") == ACME
    clock.now += 0.1
    assert cache.get("dj_key") is None


def test_only_the_key_that_verified_is_trusted() -> None:
    cache = VerifiedKeyCache(ttl=5, clock=Clock())
    cache.put("dj_key", ACME)
    assert cache.get("dj_key_other") is None


def test_a_ttl_of_zero_keeps_nothing() -> None:
    cache = VerifiedKeyCache(ttl=0, clock=Clock())
    cache.put("dj_key", ACME)
    assert cache.get("dj_key") is None


def test_a_full_cache_drops_its_oldest_keys() -> None:
    cache = VerifiedKeyCache(ttl=5, max_entries=3, clock=Clock())
    for n in range(5):
        cache.put(f"dj_key{n}", ACME)
    assert [cache.get(f"dj_key{n}") for n in range(5)] == [None, None, ACME, ACME, ACME]
