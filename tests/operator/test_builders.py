"""The operator's pure parts, without the rig: Job shape, outcome mapping, the CRD schema."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from docjobs.config import OperatorSettings
from docjobs.domain.lifecycle import AttemptTimedOut, RunnerExited, RunnerLost
from docjobs.domain.models import InputRef, JobSpec, Progress, RunnerSummary, RunOutcome
from docjobs.kube.crd import documentjob_crd
from docjobs.kube.status import format_duration
from docjobs.operator.builders import (
    JobEnd,
    RunnerExit,
    build_job,
    build_merge_job,
    build_sharded_job,
    job_name,
    label_value,
    observation_of,
    reported,
    runner_exit,
    settle,
    shard_parts,
    shard_progress,
    shards_done,
    unschedulable,
)
from docjobs.operator.manifest_secrets import manifest_secret, mounted_secret, new_secret_name

NOW = datetime(2026, 1, 1, tzinfo=UTC)
RESOURCE = {"metadata": {"name": "job-abc", "namespace": "ns", "uid": "u-1"}}
MANIFEST = "http://s3.test/docjobs/acme/job_abc/attempts/1/manifest.json?X-Amz-Signature=0"
SECRET = "job-abc-a1-manifest-0a1b2c3d"


def _spec(operation: dict[str, Any], timeout: float = 600) -> JobSpec:
    return JobSpec.model_validate(
        {
            "job_id": "job_abc",
            "tenant": "acme",
            "operation": operation,
            "input": InputRef(key="k", file_name="f", content_type="image/png", sha256="0", size=1),
            "timeout_seconds": timeout,
            "created_at": NOW,
        }
    )


def test_gpu_and_cpu_pools_come_from_settings() -> None:
    settings = OperatorSettings()
    doctr = build_job(RESOURCE, _spec({"kind": "ocr.advanced"}), 2, settings, SECRET)
    pod = doctr["spec"]["template"]["spec"]
    assert doctr["metadata"]["name"] == "job-abc-a2"
    assert pod["nodeSelector"] == {"docjobs.io/pool": "gpu"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["containers"][0]["image"] == settings.runner_gpu_image

    tesseract = build_job(
        RESOURCE, _spec({"kind": "ocr.simple"}, timeout=30.5), 1, settings, SECRET
    )
    pod = tesseract["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"docjobs.io/pool": "cpu"}
    assert "tolerations" not in pod
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    # The job's own timeout shortens the engine's deadline, never the other way round.
    assert tesseract["spec"]["activeDeadlineSeconds"] == 31
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    # Neither the job spec nor a store credential: the manifest's URL (in a file) is all the
    # pod gets.
    assert env["DOCJOBS_RUNNER__MANIFEST_FILE"]["value"] == "/var/run/docjobs/manifest/url"
    assert env["DOCJOBS_ATTEMPT"]["value"] == "1"
    assert not [name for name in env if name.startswith(("DOCJOBS_S3", "DOCJOBS_JOB_SPEC"))]
    assert "job_abc" not in json.dumps(env)


@pytest.mark.parametrize(
    ("ocr", "pool"), [("advanced", "gpu"), ("simple", "cpu"), ("vision", "cpu")]
)
def test_a_parse_job_runs_where_its_templates_ocr_tier_runs(ocr: str, pool: str) -> None:
    settings = OperatorSettings()
    template = {"name": "invoice", "fields": [{"name": "invoice.number"}]}
    extract = {"kind": "extract", "template_id": "tpl-1", "template": template, "ocr": ocr}

    job = build_job(RESOURCE, _spec(extract), 1, settings, SECRET)

    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"docjobs.io/pool": pool}
    on_gpu = pool == "gpu"
    assert ("nvidia.com/gpu" in pod["containers"][0]["resources"]["limits"]) is on_gpu
    image = settings.runner_gpu_image if on_gpu else settings.runner_image
    assert pod["containers"][0]["image"] == image
    assert job["metadata"]["labels"]["docjobs.io/engine"] == ("doctr" if on_gpu else "extract")
    assert job["metadata"]["labels"]["docjobs.io/operation"] == "extract"


def test_pool_runtime_priority_account_and_claude_key_reach_the_pod() -> None:
    settings = OperatorSettings.model_validate(
        {
            "pools": {
                "cpu": {"node_selector": {"pool": "cpu"}, "priority_class_name": "batch-low"},
                "gpu": {"node_selector": {"pool": "gpu"}, "runtime_class_name": "nvidia"},
            },
            "llm_secret": "release-claude",
            "runner_service_account": "release-runner",
        }
    )
    doctr = build_job(RESOURCE, _spec({"kind": "ocr.advanced"}), 1, settings, SECRET)
    pod = doctr["spec"]["template"]["spec"]
    assert (pod["runtimeClassName"], pod.get("priorityClassName")) == ("nvidia", None)
    assert pod["serviceAccountName"] == "release-runner"
    assert pod["automountServiceAccountToken"] is False
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    # By reference only: the key itself is never written into the Job.
    assert env["DOCJOBS_LLM__API_KEY"] == {
        "name": "DOCJOBS_LLM__API_KEY",
        "valueFrom": {
            "secretKeyRef": {"name": "release-claude", "key": "apiKey", "optional": True}
        },
    }
    vision = build_job(RESOURCE, _spec({"kind": "ocr.vision"}), 1, settings, SECRET)
    (key_env,) = [
        e
        for e in vision["spec"]["template"]["spec"]["containers"][0]["env"]
        if e["name"] == "DOCJOBS_LLM__API_KEY"
    ]
    assert "value" not in key_env
    assert key_env["valueFrom"]["secretKeyRef"]["name"] == "release-claude"
    convert = build_job(
        RESOURCE, _spec({"kind": "convert", "sourceFormat": "text"}), 1, settings, SECRET
    )
    pod = convert["spec"]["template"]["spec"]
    assert (pod.get("runtimeClassName"), pod["priorityClassName"]) == (None, "batch-low")
    default = build_job(
        RESOURCE,
        _spec({"kind": "convert", "sourceFormat": "text"}),
        1,
        OperatorSettings(),
        SECRET,
    )
    pod = default["spec"]["template"]["spec"]
    assert "serviceAccountName" not in pod
    assert "DOCJOBS_LLM__API_KEY" not in {e["name"] for e in pod["containers"][0]["env"]}


def _mounted_manifest(job: dict[str, Any]) -> tuple[str, str]:
    """(the Secret a runner Job's pod mounts its manifest URL from, the file it reads)."""
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    path = env["DOCJOBS_RUNNER__MANIFEST_FILE"]
    (mount,) = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    secret = volume["secret"]
    assert "optional" not in secret, "the pod must wait for its Secret, not start without it"
    # Owner-read only; the runner reads it through its group (the files are root's).
    assert secret["defaultMode"] == 0o400
    assert pod["securityContext"]["fsGroup"] == container["securityContext"]["runAsGroup"]
    (item,) = secret["items"]
    assert f"{mount['mountPath']}/{item['path']}" == path
    return secret["secretName"], item["key"]


def test_runner_jobs_mount_their_manifest_secret_and_carry_no_url() -> None:
    spec = _scan(100, {"kind": "ocr.simple"})
    parts = shard_parts(spec, SHARDING, PART_PAGES)
    convert = _spec({"kind": "convert", "sourceFormat": "text"})
    jobs = [
        build_job(RESOURCE, convert, 1, SHARDING, "job-abc-a1-manifest-1"),
        build_sharded_job(RESOURCE, spec, 2, parts, SHARDING, "job-abc-a2-manifest-2"),
        build_merge_job(RESOURCE, spec, 2, len(parts), SHARDING, "job-abc-a2-merge-manifest-3"),
    ]
    mounted = []
    for job in jobs:
        text = json.dumps(job)
        assert "X-Amz" not in text and "manifest.json" not in text and "attempts/" not in text
        mounted.append(_mounted_manifest(job))
    assert mounted == [
        ("job-abc-a1-manifest-1", "url"),
        ("job-abc-a2-manifest-2", "url"),
        ("job-abc-a2-merge-manifest-3", "url"),
    ]


def test_every_job_created_gets_a_secret_name_of_its_own() -> None:
    """A Job made again under its name (a merge Job deleted and recreated, a namesake
    DocumentJob's) must not mount the Secret of the Job before, which the garbage collector
    deletes at any moment."""
    names = {new_secret_name("job-abc-a1-merge") for _ in range(50)}
    assert len(names) == 50
    assert all(name.startswith("job-abc-a1-merge-manifest-") for name in names)
    longest = new_secret_name(job_name("job-" + "x" * 120, 20, "merge"))
    assert len(longest) <= 253 and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", longest)


def test_the_manifest_secret_holds_the_url_and_goes_with_its_job() -> None:
    job = build_job(RESOURCE, _spec({"kind": "ocr.simple"}), 1, OperatorSettings(), SECRET)
    created = {**job, "metadata": {**job["metadata"], "uid": "job-uid-1"}}
    assert mounted_secret(created) == SECRET

    secret = manifest_secret(created, SECRET, MANIFEST)

    assert secret["metadata"]["name"] == _mounted_manifest(job)[0]
    assert secret["metadata"]["namespace"] == "ns"
    assert base64.b64decode(secret["data"]["url"]).decode() == MANIFEST
    # Owned by the Job (not controlled: it is no controller's), so deleted with it.
    assert secret["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "job-abc-a1",
            "uid": "job-uid-1",
            "controller": False,
        }
    ]
    assert secret["metadata"]["labels"]["docjobs.io/job"] == "job-abc"


def test_long_names_fit_kubernetes_limits() -> None:
    long = "job-" + "x" * 120
    assert len(job_name(long, 20)) <= 63 and job_name(long, 20).endswith("-a20")
    assert job_name(long, 1) != job_name(long + "y", 1)
    assert len(label_value(long)) <= 63
    assert job_name("job-short", 3) == "job-short-a3"


SUMMARY = '{"result": {"key": "r", "content_type": "application/pdf", "size": 3}, "page_count": 2}'


@pytest.mark.parametrize(
    ("end", "exit", "recorded", "expected"),
    [
        (JobEnd(True, "", ""), RunnerExit(0, SUMMARY), None, (RunnerExited, 0)),
        (JobEnd(False, "PodFailurePolicy", ""), RunnerExit(42, ""), None, (RunnerExited, 42)),
        (JobEnd(False, "PodFailurePolicy", ""), None, None, (RunnerExited, 42)),
        (JobEnd(False, "BackoffLimitExceeded", ""), RunnerExit(137, ""), None, (RunnerExited, 137)),
        (JobEnd(False, "DeadlineExceeded", ""), RunnerExit(143, ""), None, (AttemptTimedOut, None)),
        (JobEnd(False, "BackoffLimitExceeded", ""), None, None, (RunnerLost, None)),
        # Pods gone (operator down past their TTL): the outcome the runner stored decides.
        (JobEnd(True, "", ""), None, RunOutcome(exit_code=0), (RunnerExited, 0)),
        # Success that reported nothing: no result to point at, so another attempt.
        (JobEnd(True, "", ""), RunnerExit(0, "garbage"), None, (RunnerExited, 1)),
        # Work done, then the deadline, a lost pod or a failed Job: the stored outcome wins.
        (JobEnd(False, "DeadlineExceeded", ""), None, RunOutcome(exit_code=0), (RunnerExited, 0)),
        (
            JobEnd(False, "DeadlineExceeded", ""),
            RunnerExit(0, SUMMARY),
            RunOutcome(exit_code=0, summary=RunnerSummary.model_validate_json(SUMMARY)),
            (RunnerExited, 0),
        ),
        (
            JobEnd(False, "BackoffLimitExceeded", ""),
            None,
            RunOutcome(exit_code=0),
            (RunnerExited, 0),
        ),
        (
            JobEnd(False, "BackoffLimitExceeded", ""),
            RunnerExit(143, ""),
            RunOutcome(exit_code=42),
            (RunnerExited, 42),
        ),
    ],
)
def test_finished_jobs_become_observations(
    end: JobEnd, exit: RunnerExit | None, recorded: RunOutcome | None, expected: tuple
) -> None:
    signal = observation_of(end, exit, NOW)
    observation = signal if reported(end, exit) else settle(signal, recorded)
    kind, code = expected
    assert isinstance(observation, kind)
    if code is not None:
        assert isinstance(observation, RunnerExited) and observation.exit_code == code
    if isinstance(observation, RunnerExited) and code == 0 and exit is not None:
        assert observation.summary == RunnerSummary.model_validate_json(SUMMARY)


def test_last_finished_pod_decides_and_unschedulable_is_read() -> None:
    def pod(code: int, finished: str) -> dict[str, Any]:
        state = {"terminated": {"exitCode": code, "finishedAt": finished, "message": str(code)}}
        return {"status": {"containerStatuses": [{"name": "runner", "state": state}]}}

    assert runner_exit([pod(1, "2026-01-01T00:00:05Z"), pod(0, "2026-01-01T00:00:09Z")]) == (
        RunnerExit(0, "0")
    )
    assert runner_exit([{"status": {}}]) is None
    pending = {
        "metadata": {},
        "status": {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/2 nodes are available",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ]
        },
    }
    verdict = unschedulable(pending)
    assert verdict is not None and verdict.since == NOW and "0/2" in verdict.message


def test_durations_read_like_kubectl() -> None:
    assert [format_duration(s) for s in (0.25, 42, 192, 7500, 3 * 86400 + 4 * 3600)] == [
        "250ms",
        "42s",
        "3m12s",
        "2h05m",
        "3d4h",
    ]


def _nodes(schema: dict[str, Any]) -> list[dict[str, Any]]:
    out = [schema]
    for sub in (schema.get("properties") or {}).values():
        out += _nodes(sub)
    if isinstance(schema.get("items"), dict):
        out += _nodes(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        out += _nodes(schema["additionalProperties"])
    return out


def test_crd_schema_is_structural() -> None:
    version = documentjob_crd()["spec"]["versions"][0]
    nodes = _nodes(version["schema"]["openAPIV3Schema"])
    for node in nodes:
        assert "type" in node, node
        assert not {"$ref", "anyOf", "oneOf", "allOf", "const", "title", "default"} & set(node)
        assert not ("properties" in node and "additionalProperties" in node), node
    assert {c["name"] for c in version["additionalPrinterColumns"]} == {
        "Operation",
        "Phase",
        "Progress",
        "Attempts",
        "Pages",
        "Age",
        "Duration",
        "Message",
    }


def _scan(pages: int, operation: dict[str, Any]) -> JobSpec:
    scan = InputRef(
        key="k",
        file_name="scan.pdf",
        content_type="application/pdf",
        sha256="0",
        size=1,
        page_count=pages,
    )
    return _spec(operation).model_copy(update={"input": scan})


SHARDING = OperatorSettings(shard_threshold_pages=40, shard_parallelism=3, shard_retries=2)
PART_PAGES = 25


def test_a_long_scan_runs_as_one_indexed_job_of_page_shards() -> None:
    spec = _scan(100, {"kind": "ocr.simple", "output": "detailed"})
    parts = shard_parts(spec, SHARDING, PART_PAGES)
    assert parts == ["1-25", "26-50", "51-75", "76-100"]

    job = build_sharded_job(RESOURCE, spec, 2, parts, SHARDING, SECRET)

    assert job["metadata"]["name"] == "job-abc-a2"
    body = job["spec"]
    assert body["completionMode"] == "Indexed"
    assert (body["completions"], body["parallelism"]) == (4, 3)
    assert (body["backoffLimitPerIndex"], body["maxFailedIndexes"]) == (2, 0)
    assert "backoffLimit" not in body, "a Job-wide limit would fail it on one shard's retry"
    permanent = body["podFailurePolicy"]["rules"][0]
    assert permanent["action"] == "FailJob"
    assert permanent["onExitCodes"]["values"] == [42]
    env = {e["name"]: e.get("value") for e in body["template"]["spec"]["containers"][0]["env"]}
    assert json.loads(env["DOCJOBS_PAGE_PARTS"]) == parts
    assert env["DOCJOBS_ATTEMPT"] == "2"


@pytest.mark.parametrize(
    ("pages", "operation", "settings"),
    [
        (40, {"kind": "ocr.simple"}, SHARDING),
        (100, {"kind": "ocr.simple", "pages": "1-30,90-95"}, SHARDING),
        (100, {"kind": "convert", "source_format": "text"}, SHARDING),
        (100, {"kind": "ocr.simple"}, OperatorSettings(shard_threshold_pages=0)),
    ],
)
def test_short_selections_and_other_operations_run_in_one_pod(
    pages: int, operation: dict[str, Any], settings: OperatorSettings
) -> None:
    assert shard_parts(_scan(pages, operation), settings, PART_PAGES) == []


def test_shards_keep_a_page_selection_in_its_order() -> None:
    spec = _scan(100, {"kind": "ocr.simple", "pages": "90-100,1-40"})
    assert shard_parts(spec, SHARDING, PART_PAGES) == ["90-100,1-14", "15-39", "40"]


def test_the_merge_job_is_a_separate_step_of_the_same_attempt() -> None:
    spec = _scan(100, {"kind": "ocr.simple"})
    merge = build_merge_job(RESOURCE, spec, 3, 4, SHARDING, SECRET)
    assert merge["metadata"]["name"] == "job-abc-a3-merge"
    assert merge["metadata"]["labels"]["docjobs.io/step"] == "merge"
    assert merge["metadata"]["labels"]["docjobs.io/attempt"] == "3"
    assert merge["spec"]["backoffLimit"] == 0
    assert "completionMode" not in merge["spec"]
    env = {
        e["name"]: e.get("value") for e in merge["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["DOCJOBS_MERGE_PARTS"] == "4"


def test_shard_progress_reads_the_indexed_jobs_counts() -> None:
    assert shards_done({"spec": {"completions": 4}, "status": {"succeeded": 3}}) == (3, 4)
    assert shards_done({"spec": {"completions": 4}}) == (0, 4)


def test_pages_done_are_the_pages_of_the_completed_indexes() -> None:
    spec = _scan(90, {"kind": "ocr.simple"})
    job = build_sharded_job(
        RESOURCE, spec, 1, shard_parts(spec, SHARDING, PART_PAGES), SHARDING, SECRET
    )
    assert shard_progress(job) == Progress(pages_done=0, pages_total=90)
    # Shards 0 and 2 ("1-25", "51-75") done, then the last ("76-90", 15 pages) too.
    job["status"] = {"succeeded": 2, "completedIndexes": "0,2"}
    assert shard_progress(job) == Progress(pages_done=50, pages_total=90)
    job["status"] = {"succeeded": 3, "completedIndexes": "0,2-3"}
    assert shard_progress(job) == Progress(pages_done=65, pages_total=90)
    one_pod = build_job(RESOURCE, _scan(10, {"kind": "ocr.simple"}), 1, SHARDING, SECRET)
    assert shard_progress(one_pod) is None
