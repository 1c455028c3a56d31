"""How a runner pod gets its manifest's URL: a Secret per runner Job, mounted as a file.

The URL is a bearer credential for the attempt's input and result until it expires, so it
stays out of the Job and pod specs (anyone who may read those in the namespace would hold it).
The Job's pod template mounts Secret ``<job>-manifest-<random>`` and names only the file in
its environment; the operator creates the Secret right after the Job, owned by the Job's uid,
so the garbage collector deletes it with the Job. Until it exists the kubelet holds the pod in
``ContainerCreating``, retrying the mount: the pod starts once it is there.

The name is new for every Job created: a Job made again under the same name (a merge Job
deleted and recreated, a namesake DocumentJob's) never mounts the Secret of the Job before,
which the garbage collector deletes at any moment. An operator that adopts a Job after a
crash reads the name from the Job's own pod template.

The operator only ever creates these Secrets (RBAC cannot limit ``create`` to some names, but
it can withhold ``get``, ``update`` and ``delete`` on Secrets). One that exists already is
this very Job's (its name is the Job's own): an earlier look created it and the pod may
already have read it, so it is kept.
"""

from __future__ import annotations

import base64
import secrets

from docjobs.kube.client import JSON, KubeClient, KubeError
from docjobs.kube.paths import core_path

MANIFEST_FILE_ENV = "DOCJOBS_RUNNER__MANIFEST_FILE"
"""On runner pods: the file holding a presigned GET URL of the attempt's manifest (its job
spec and the presigned URLs of its objects); runner pods get no store credentials."""
MANIFEST_VOLUME = "manifest"
MANIFEST_DIR = "/var/run/docjobs/manifest"
MANIFEST_KEY = "url"
"""The key of the URL in a manifest Secret, and its file's name in the volume."""
MANIFEST_FILE_MODE = 0o400
"""The kubelet gives the file to the pod's ``fsGroup`` (the runner's group) and adds group
read, since the files of a secret volume belong to root: the runner's uid reads it by its
group, no other uid can."""


def new_secret_name(job: str) -> str:
    """A name for the manifest Secret of runner Job ``job``, about to be created."""
    return f"{job}-manifest-{secrets.token_hex(4)}"


def manifest_volume(secret_name: str) -> JSON:
    """The volume of a Job's manifest Secret. Not optional: the kubelet holds the pod until
    the Secret exists."""
    secret = {
        "secretName": secret_name,
        "defaultMode": MANIFEST_FILE_MODE,
        "items": [{"key": MANIFEST_KEY, "path": MANIFEST_KEY}],
    }
    return {"name": MANIFEST_VOLUME, "secret": secret}


def mounted_secret(job: JSON) -> str | None:
    """The manifest Secret ``job``'s pods mount; None for a Job that mounts none."""
    for volume in job["spec"]["template"]["spec"].get("volumes") or []:
        if volume.get("name") == MANIFEST_VOLUME and "secret" in volume:
            return str(volume["secret"]["secretName"])
    return None


def manifest_secret(job: JSON, secret_name: str, manifest_url: str) -> JSON:
    """Secret ``secret_name`` holding the created runner Job ``job``'s manifest URL, owned by
    the Job."""
    meta = job["metadata"]
    owner = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": False,
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name,
            "namespace": meta["namespace"],
            "labels": dict(meta.get("labels") or {}),
            "ownerReferences": [owner],
        },
        "data": {MANIFEST_KEY: base64.b64encode(manifest_url.encode()).decode()},
    }


def hand_over(kube: KubeClient, job: JSON, manifest_url: str) -> None:
    """Store ``manifest_url`` in the Secret ``job`` mounts, unless an earlier look did."""
    secret_name = mounted_secret(job)
    if secret_name is None:  # a Job made before Secrets held the URL: its spec has it
        return
    body = manifest_secret(job, secret_name, manifest_url)
    try:
        kube.create(core_path(body["metadata"]["namespace"], "secrets"), body)
    except KubeError as exc:
        if exc.status != 409:
            raise
