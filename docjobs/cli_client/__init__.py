"""The ``docjobs`` commands that talk to a running server through :mod:`docjobs.client`:
``submit``, ``jobs list|get|cancel|delete|result``, ``templates apply|list|get|delete``,
``webhooks list|create|update|delete|deliveries|replay`` and ``batch submit|status|cancel``.

The client, rich and yaml are imported where a command runs: every ``docjobs`` start (a
runner's too) loads this package.
"""

from .batches import batch_app
from .jobs import jobs_app
from .submission import submit
from .templates import templates_app
from .webhooks import webhooks_app

__all__ = ["batch_app", "jobs_app", "submit", "templates_app", "webhooks_app"]
