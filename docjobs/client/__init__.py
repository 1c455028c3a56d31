"""A Python client of docjobs: ``Client`` (blocking) and ``AsyncClient`` (asyncio).

from docjobs.client import Client

with Client("http://localhost:8000", api_key) as docjobs:
    job = docjobs.ocr(Path("scan.pdf"))
    docjobs.jobs.wait(job.job_id)
    text = docjobs.jobs.result(job.job_id)
"""

from .aio import AsyncClient
from .errors import DocjobsError
from .sync import Client

__all__ = ["AsyncClient", "Client", "DocjobsError"]
