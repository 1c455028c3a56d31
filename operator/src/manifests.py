"""An attempt's manifest: what its runner pod may touch in the object store, and its job.

The operator holds the store's credentials; runner pods hold none. Before it creates an
attempt's Job, the operator stores the job spec with one presigned URL per object and
method that attempt needs (its own input, result, outcome, progress and parts, the template
version it runs with, docTR's weights) and gives the pod only a presigned GET URL of that
manifest. The URLs last as long as the attempt can run (its deadline) plus a margin.
"""

from __future__ import annotations

from datetime import timedelta

from docjobs.config import DoctrSettings, OperatorSettings
from docjobs.domain.clock import utcnow
from docjobs.domain.models import Engine, Extract, JobSpec, engine_of
from docjobs.storage.base import (
    RESULT_EXTENSIONS,
    manifest_key,
    outcome_key,
    part_key,
    progress_key,
    result_key,
    template_key,
    weights_key,
)
from docjobs.storage.presigned import SigningStore, sign_manifest

_DOCTR_ENV = "DOCJOBS_DOCTR__"


def write_manifest(
    store: SigningStore,
    spec: JobSpec,
    attempt: int,
    parts: int,
    settings: OperatorSettings,
    deadline_seconds: int,
) -> str:
    """Stores ``attempt``'s manifest (``parts``: its shards, 0 for one pod); a presigned
    GET URL of it, for the runner pod's environment."""
    expires_at = utcnow() + timedelta(seconds=deadline_seconds + settings.url_margin_seconds)
    gets, puts = grants(spec, attempt, parts, settings)
    manifest = sign_manifest(store, spec, attempt, expires_at, gets, puts)
    key = manifest_key(spec.tenant, spec.job_id, attempt)
    store.put_bytes(key, manifest.model_dump_json().encode(), "application/json")
    return store.presign("GET", key, expires_at)


def grants(
    spec: JobSpec, attempt: int, parts: int, settings: OperatorSettings
) -> tuple[list[str], list[str]]:
    """(keys the attempt may GET, keys it may PUT): its own job's objects, the template
    version it runs with and docTR's weights, nothing else."""
    tenant, job_id = spec.tenant, spec.job_id
    gets = [spec.input.key]
    puts = [result_key(tenant, job_id, extension) for extension in RESULT_EXTENSIONS]
    puts += [outcome_key(tenant, job_id, attempt), progress_key(tenant, job_id, attempt)]
    shards = [part_key(tenant, job_id, attempt, index) for index in range(parts)]
    gets += shards  # the merge reads what the shards wrote
    puts += shards
    operation = spec.operation
    if isinstance(operation, Extract):
        gets.append(template_key(tenant, operation.template_id, operation.template_version))
    if engine_of(operation) is Engine.DOCTR:
        doctr = runner_doctr(settings)
        if doctr.weights_prefix:
            archs = (doctr.detection_arch, doctr.recognition_arch)
            gets += [weights_key(doctr.weights_prefix, arch) for arch in archs]
    return gets, puts


def runner_doctr(settings: OperatorSettings) -> DoctrSettings:
    """docTR's settings as runner pods read them from ``runner_env`` (``DOCJOBS_DOCTR__*``):
    which weight files they will look for under which prefix."""
    given = {
        name[len(_DOCTR_ENV) :].lower(): value
        for name, value in settings.runner_env.items()
        if name.upper().startswith(_DOCTR_ENV)
    }
    return DoctrSettings.model_validate(given)
