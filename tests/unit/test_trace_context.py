"""The trace context a job carries: a ``traceparent`` string, read and made here."""

from __future__ import annotations

import re

from opentelemetry import trace

from docjobs.tracing import context_of, mint_traceparent, trace_id_of

TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$")


def test_a_minted_traceparent_is_a_new_unsampled_w3c_context() -> None:
    first, second = mint_traceparent(), mint_traceparent()
    assert TRACEPARENT.match(first) and first.endswith("-00")
    assert trace_id_of(first) != trace_id_of(second)


def test_a_clients_traceparent_names_its_trace_and_a_malformed_one_none() -> None:
    sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert trace_id_of(sent) == "4bf92f3577b34da6a3ce929d0e0e4736"
    span = trace.get_current_span(context_of(sent)).get_span_context()
    assert f"{span.span_id:016x}" == "00f067aa0ba902b7" and span.trace_flags.sampled
    for malformed in (
        None,
        "",
        "00-xyz-00f067aa0ba902b7-01",
        "00-" + "0" * 32 + "-" + "1" * 16 + "-01",
    ):
        assert trace_id_of(malformed) is None
