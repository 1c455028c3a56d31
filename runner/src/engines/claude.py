"""What the engines that ask Claude share: the client, and failures sorted for retries.

Rate limiting (429), overload (529), server errors and unreachable or slow servers raise
:class:`LlmUnavailable`, so the attempt fails as transient and the job's retry policy
applies; other refusals (bad key, no permission, unknown model, document too large) are
permanent, with the API's own message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anthropic

from docjobs.config import LlmSettings
from docjobs.runner.engines import PermanentError

RETRYABLE_STATUS = frozenset({408, 409, 429})
"""Besides 5xx (529 is "overloaded"): timeouts, conflicts and rate limits pass."""
MALFORMED = "MalformedModelAnswer"


class LlmUnavailable(RuntimeError):
    """Claude could not be reached, was overloaded or rate limited: worth a later attempt."""


def client(settings: LlmSettings, max_retries: int) -> anthropic.Anthropic:
    """A client for ``settings``; refuses at once when no key is configured."""
    if not settings.api_key:
        raise PermanentError(
            "LlmNotConfigured",
            "Claude has no API key (DOCJOBS_LLM__API_KEY); ask the operator to configure "
            "one, or use an engine that needs no model service.",
        )
    return anthropic.Anthropic(
        api_key=settings.api_key,
        base_url=settings.base_url,
        timeout=settings.timeout_seconds,
        max_retries=max_retries,
    )


@contextmanager
def failures_sorted() -> Iterator[None]:
    """Turn the SDK's exceptions into transient or permanent job failures."""
    try:
        yield
    except anthropic.APIConnectionError as exc:  # timeouts included
        raise LlmUnavailable(f"Claude could not be reached: {exc}") from exc
    except anthropic.APIStatusError as exc:
        if exc.status_code >= 500 or exc.status_code in RETRYABLE_STATUS:
            raise LlmUnavailable(f"Claude answered {exc.status_code}: {exc.message}") from exc
        raise PermanentError(
            "LlmRequestRejected", f"Claude refused the request ({exc.status_code}): {exc.message}"
        ) from None
    except (anthropic.APIResponseValidationError, ValueError) as exc:
        # The SDK lets json's ValueError through when the body is not JSON at all.
        raise PermanentError(MALFORMED, f"Claude's answer could not be read: {exc}") from None
