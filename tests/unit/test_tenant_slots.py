"""The operator's per-tenant cap: slots granted up to the cap, freed as the watch shows ends."""

from __future__ import annotations

from docjobs.operator.agenda import Ref, TenantSlots

A, B, C = Ref("ns", "a"), Ref("ns", "b"), Ref("ns", "c")


def test_a_tenant_gets_no_more_slots_than_its_cap_and_waiters_are_named_when_one_ends() -> None:
    slots = TenantSlots(cap=1)
    assert slots.take(A, "acme") is None
    assert slots.take(A, "acme") is None  # a retried step keeps its own slot
    assert slots.take(B, "acme") == 1
    assert slots.take(C, "other") is None
    assert slots.seen(A, "acme", running=True) == []
    assert slots.seen(A, "acme", running=False) == [B]
    assert slots.take(B, "acme") is None


def test_the_watch_counts_jobs_running_before_a_restart_and_deletes_free_slots() -> None:
    slots = TenantSlots(cap=1)
    slots.seen(A, "acme", running=True)
    assert slots.take(B, "acme") == 1
    assert slots.forget(A) == [B]
    assert slots.take(B, "acme") is None


def test_no_cap_grants_every_slot() -> None:
    slots = TenantSlots(cap=0)
    assert all(slots.take(Ref("ns", str(n)), "acme") is None for n in range(100))
