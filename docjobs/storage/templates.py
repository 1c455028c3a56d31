"""Template versions in the object store: written once at submission, read by the runner.

A job names its template by id and content version; the version's body is one immutable
object (:func:`template_key`), shared by every job that runs with it. Versions are never
deleted: each is at most the template size cap, and only versions a job ran with are written.
"""

from __future__ import annotations

from docjobs.domain.models import Extract, Operation
from docjobs.storage.base import ObjectStore, template_key
from docjobs.templates.schema import TemplateSpec
from docjobs.templates.store import canonical_json


def save_template_version(objects: ObjectStore, tenant: str, operation: Operation) -> None:
    """Stores the template version an extract operation runs with, unless it is already
    there (blocking). Operations without a template in hand have nothing to store."""
    if not isinstance(operation, Extract) or operation.template is None:
        return
    key = template_key(tenant, operation.template_id, operation.template_version)
    # A version's content never changes, so an existing object is already the right one.
    if not objects.exists(key):
        objects.put_bytes(key, canonical_json(operation.template), "application/json")


def resolve_template(operation: Extract, tenant: str, store: ObjectStore) -> TemplateSpec:
    """The template ``operation`` runs with: the copy a job stored before versions
    carries, else its version read from ``store`` (blocking; ``ObjectNotFound`` if gone)."""
    if operation.template is not None:
        return operation.template
    key = template_key(tenant, operation.template_id, operation.template_version)
    return TemplateSpec.model_validate_json(b"".join(store.iter_chunks(key)))
