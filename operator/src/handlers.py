"""kopf handlers: each one line into :class:`Controller`, which holds the logic.

Handlers are sync: kopf runs them on its thread pool, and each mostly waits on the API
server. ``on.create``/``on.resume`` start or adopt the current attempt; watch events of
DocumentJobs, runner Jobs and runner pods feed the controller; its tick thread does what
no event announces (due retries, expiry, unschedulable timeouts, periodic checks).
"""

from __future__ import annotations

from typing import Any

import kopf

from docjobs.domain.models import TERMINAL_PHASE_NAMES
from docjobs.kube.resources import GROUP, LABEL_JOB, PLURAL, VERSION

from .agenda import Ref
from .controller import Controller
from .metrics import EVENTS

RETRY_BACKOFF = 5.0
"""Seconds between kopf's retries of a failed create/resume/cancel handler."""
STALE_TICK_SECONDS = 60.0
"""The liveness probe fails when the tick thread has not run for this long."""


def _unfinished(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") not in TERMINAL_PHASE_NAMES


def register(registry: kopf.OperatorRegistry, controller: Controller) -> None:
    documentjobs = (GROUP, VERSION, PLURAL)

    # An own registry has none of kopf's default login handlers: the same loading as ours.
    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    def serve_what_exists(settings: kopf.OperatorSettings, **_: Any) -> None:
        # No watching for new namespaces and CRDs: that needs cluster-wide list/watch of both,
        # which the chart's namespaced Roles do not grant (kopf would retry for about a minute
        # before serving anything). The namespaces are given and the CRDs installed first.
        settings.scanning.disabled = True

    @kopf.on.startup(registry=registry)
    def start_ticking(**_: Any) -> None:
        controller.start()

    @kopf.on.cleanup(registry=registry)
    def stop_ticking(**_: Any) -> None:
        controller.stop()

    @kopf.on.probe(id="tick_age_seconds", registry=registry)
    def tick_age(**_: Any) -> float:
        # Served on the liveness endpoint; a stuck tick thread fails the probe.
        age = controller.tick_age()
        if age > STALE_TICK_SECONDS:
            raise kopf.PermanentError(f"no tick for {age:.0f} s")
        return round(age, 1)

    # Finished DocumentJobs need nothing at start-up but their expiry, which the agenda
    # tracks from the initial listing: resuming them would cost a GET each.
    @kopf.on.create(*documentjobs, registry=registry, backoff=RETRY_BACKOFF)
    @kopf.on.resume(*documentjobs, registry=registry, backoff=RETRY_BACKOFF, when=_unfinished)
    def start_or_adopt(namespace: str | None, name: str, **_: Any) -> None:
        controller.reconcile(Ref(str(namespace), name))

    @kopf.on.field(
        *documentjobs, field="spec.cancel", new=True, registry=registry, backoff=RETRY_BACKOFF
    )
    def cancel(namespace: str | None, name: str, **_: Any) -> None:
        controller.reconcile(Ref(str(namespace), name))

    @kopf.on.event(*documentjobs, registry=registry)
    def documentjob_event(event: kopf.RawEvent, **_: Any) -> None:
        EVENTS.labels("documentjobs").inc()
        controller.track(event.get("type"), dict(event["object"]))

    @kopf.on.event("batch", "v1", "jobs", labels={LABEL_JOB: kopf.PRESENT}, registry=registry)
    def job_event(event: kopf.RawEvent, **_: Any) -> None:
        EVENTS.labels("jobs").inc()
        controller.job_changed(event.get("type"), dict(event["object"]))

    @kopf.on.event("v1", "pods", labels={LABEL_JOB: kopf.PRESENT}, registry=registry)
    def pod_event(event: kopf.RawEvent, **_: Any) -> None:
        EVENTS.labels("pods").inc()
        controller.pod_changed(event.get("type"), dict(event["object"]))
