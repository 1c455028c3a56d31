"""Progress in pages: counted from part selections, reset by a new attempt, full at the end."""

from __future__ import annotations

from datetime import timedelta

from docjobs.domain import lifecycle
from docjobs.domain.models import Phase, Progress, RunnerSummary
from docjobs.domain.sharding import page_parts, selection_size
from tests.unit.test_lifecycle import T0, run, spec


def test_selection_size_counts_each_page_of_a_part() -> None:
    pages = [1, 2, 3, 5, 8, 9, 10, 12]
    assert [selection_size(part) for part in page_parts(pages, 3)] == [3, 3, 2]
    assert selection_size("1-3,5,8-10,12") == len(pages)


def test_a_new_attempt_starts_from_no_progress_and_completion_shows_every_page() -> None:
    job = spec(max_attempts=3)
    failed = run(job, lifecycle.AttemptStarted(T0), lifecycle.RunnerExited(1, RunnerSummary(), T0))
    halfway = failed.status.model_copy(update={"progress": Progress(pages_done=4, pages_total=8)})
    retry_at = T0 + timedelta(seconds=60)
    again = lifecycle.decide(job, halfway, lifecycle.AttemptStarted(retry_at))
    assert again.status.phase is Phase.PROCESSING and again.status.progress is None

    done = lifecycle.decide(
        job, again.status, lifecycle.RunnerExited(0, RunnerSummary(page_count=8), retry_at)
    )
    assert done.status.progress == Progress(pages_done=8, pages_total=8)
