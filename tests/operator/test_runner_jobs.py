"""DocumentJob -> runner Job -> pod on the rig -> result in MinIO -> status, with the real
scheduler, Job controller and garbage collector doing their parts."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

from docjobs.domain.models import RetryPolicy
from docjobs.kube.status import parse_time
from tests.docs import pdf_with_pages, png_bytes, recovered, sentence_lines, text_image
from tests.doctr_weights import doctr_env, save_stand_in_weights
from tests.rig.fixtures import Cluster, kubectl_table, wait_for

from .conftest import Jobs, Operator


def _scan(seed: int = 7) -> tuple[bytes, list[str]]:
    lines = sentence_lines(seed, 4)
    return png_bytes(text_image(lines)), lines


def _condition(job: dict, kind: str) -> dict | None:
    for condition in job.get("status", {}).get("conditions") or []:
        if condition["type"] == kind and condition["status"] == "True":
            return condition
    return None


def test_tesseract_job_runs_on_the_cpu_pool_and_kubectl_shows_it(
    cluster: Cluster, jobs: Jobs, operator: Operator, store
) -> None:
    data, lines = _scan()
    name = jobs.submit({"kind": "ocr.simple"}, data, "image/png", "scan.png")

    status = jobs.wait(name, timeout=120)
    assert status["phase"] == "Complete", status
    assert status["attempts"] == 1 and status["pageCount"] == 1
    assert status["result"]["contentType"] == "application/json"
    result = json.loads(b"".join(store.iter_chunks(status["result"]["key"])))
    assert recovered(lines, result["data"]["text"]) > 0.9
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Running": "False",
        "Finished": "True",
    }

    (job,) = jobs.runner_jobs(name)
    assert job["metadata"]["name"] == f"{name}-a1"
    assert _condition(job, "Complete")
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("DocumentJob", name, True)
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["ttlSecondsAfterFinished"] > 0
    assert spec["activeDeadlineSeconds"] > 0
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJob" and rules[0]["onExitCodes"]["values"] == [42]
    assert rules[1] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    (pod,) = jobs.pods(name)
    assert pod["spec"]["nodeName"] == "cpu-0"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["automountServiceAccountToken"] is False
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["docjobs", "runner"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e for e in container["env"]}
    assert env["DOCJOBS_RUNNER__MANIFEST_FILE"]["value"] == "/var/run/docjobs/manifest/url"
    assert not [e for e in env.values() if "valueFrom" in e], "no credential in its environment"

    (row,) = kubectl_table(cluster, "get", "documentjobs", "-n", jobs.ns)
    assert row["NAME"] == name
    assert row["OPERATION"] == "ocr.simple"
    assert row["PHASE"] == "Complete"
    assert row["PROGRESS"] == "1/1"
    assert row["ATTEMPTS"] == "1"
    assert row["PAGES"] == "1"
    assert re.fullmatch(r"\d+(ms|s)|\d+m\d\ds", row["DURATION"]), row
    assert re.fullmatch(r"\d+s|\d+m\d*s?", row["AGE"]), row
    assert row["MESSAGE"] == "Job complete"


def test_doctr_goes_to_the_gpu_node_and_tesseract_never_does(
    jobs: Jobs, make_operator, store, tmp_path: Path
) -> None:
    # Stand-in weights (randomly initialised) under an object-store prefix: the runner
    # copies them into its weights directory once, as on a cluster without a weights volume.
    for weights in save_stand_in_weights(tmp_path / "weights").iterdir():
        store.put_file(f"models/doctr/{weights.name}", weights, "application/octet-stream")
    runner_env = {
        **doctr_env(tmp_path / "pod-weights"),
        "DOCJOBS_DOCTR__WEIGHTS_PREFIX": "models/doctr",
    }
    make_operator(DOCJOBS_OPERATOR__RUNNER_ENV=json.dumps(runner_env))
    data, _ = _scan(11)
    doctr = jobs.submit({"kind": "ocr.advanced"}, data, "image/png")
    tesseract = [jobs.submit({"kind": "ocr.simple"}, data, "image/png") for _ in range(2)]

    done = jobs.wait(doctr, timeout=240)
    # The process kubelet has no GPU: docTR falls back to the CPU inside the pod.
    assert done["phase"] == "Complete" and done["attempts"] == 1, done
    assert done["pageCount"] == 1
    result = json.loads(b"".join(store.iter_chunks(done["result"]["key"])))
    assert result["data"]["page_count"] == 1
    assert sorted(p.name for p in (tmp_path / "pod-weights").iterdir()) == sorted(
        p.name for p in (tmp_path / "weights").iterdir()
    )
    (pod,) = jobs.pods(doctr)
    assert pod["spec"]["nodeName"] == "gpu-0"
    container = pod["spec"]["containers"][0]
    assert "runner-gpu" in container["image"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"][
        "tolerations"
    ]

    for name in tesseract:
        assert jobs.wait(name, timeout=120)["phase"] == "Complete"
        nodes = {p["spec"]["nodeName"] for p in jobs.pods(name)}
        assert nodes == {"cpu-0"}


def test_exit_42_fails_after_one_attempt_by_pod_failure_policy(
    jobs: Jobs, operator: Operator
) -> None:
    name = jobs.submit({"kind": "ocr.simple"}, b"\x89PNG\r\n\x1a\n not an image", "image/png")

    status = jobs.wait(name, timeout=90)
    assert status["phase"] == "Failed" and status["attempts"] == 1, status
    assert status["error"]["permanent"] is True
    assert status["message"] == status["error"]["message"]
    (job,) = jobs.runner_jobs(name)
    failed = _condition(job, "Failed")
    assert failed is not None and failed["reason"] == "PodFailurePolicy", job["status"]
    (pod,) = jobs.pods(name)
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 42


def _pid(cluster: Cluster, namespace: str, pod: str) -> int:
    path = cluster.state_dir / "pods" / f"{namespace}_{pod}.pid"
    text = wait_for(lambda: path.exists() and path.read_text().strip(), 30, 0.02, what=str(path))
    return int(text.split()[0])


def test_killed_runner_is_retried_after_its_backoff(
    cluster: Cluster, jobs: Jobs, operator: Operator
) -> None:
    backoff = 3.0
    name = jobs.submit(
        {"kind": "convert", "sourceFormat": "text"},
        b"retry me",
        "text/plain",
        retry=RetryPolicy(initial_backoff_seconds=backoff),
    )
    first = jobs.running_pod(name, 1)
    os.killpg(_pid(cluster, jobs.ns, first["metadata"]["name"]), signal.SIGKILL)

    retrying = jobs.wait(name, ("Retrying",), timeout=60)
    seen_retrying = time.monotonic()
    assert retrying["attempts"] == 1 and "137" in retrying["error"]["message"], retrying
    wait_for(lambda: len(jobs.runner_jobs(name)) == 2, 30, 0.05, what="the second attempt")
    seen_second = time.monotonic()

    status = jobs.wait(name, timeout=90)
    assert status["phase"] == "Complete" and status["attempts"] == 2, status
    # The backoff held: no second Job before nextAttemptAt (the API's times are whole seconds).
    assert seen_second - seen_retrying >= backoff - 0.5
    second = next(j for j in jobs.runner_jobs(name) if j["metadata"]["name"].endswith("-a2"))
    next_at = parse_time(retrying["nextAttemptAt"])
    created = parse_time(second["metadata"]["creationTimestamp"])
    assert next_at is not None and created is not None
    assert created.timestamp() >= int(next_at.timestamp())
    (killed,) = jobs.pods(name, 1)
    assert killed["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137


def test_cancel_mid_run_deletes_the_job_and_its_pod(
    cluster: Cluster, jobs: Jobs, operator: Operator
) -> None:
    pdf, _ = pdf_with_pages(8)
    name = jobs.submit({"kind": "ocr.simple"}, pdf, "application/pdf", "long.pdf")
    pod = jobs.running_pod(name, 1)
    pid = _pid(cluster, jobs.ns, pod["metadata"]["name"])

    jobs.api.patch(jobs.path(name), {"spec": {"cancel": True}})

    status = jobs.wait(name, timeout=30)
    assert status["phase"] == "Cancelled" and status["attempts"] == 1, status
    assert "result" not in status
    wait_for(lambda: not jobs.runner_jobs(name), 30, 0.1, what="the runner Job to be deleted")
    wait_for(lambda: not jobs.pods(name), 30, 0.1, what="the runner pod to be deleted")
    assert not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_unschedulable_runner_fails_the_attempt_with_the_schedulers_message(
    jobs: Jobs, make_operator
) -> None:
    # A GPU pool no node belongs to, and little patience.
    pools = {
        "cpu": {"node_selector": {"docjobs.io/pool": "cpu"}},
        "gpu": {"node_selector": {"docjobs.io/pool": "tpu"}, "image": "gpu"},
    }
    make_operator(
        DOCJOBS_OPERATOR__UNSCHEDULABLE_SECONDS="3", DOCJOBS_OPERATOR__POOLS=json.dumps(pools)
    )
    data, _ = _scan(3)
    name = jobs.submit(
        {"kind": "ocr.advanced"}, data, "image/png", retry=RetryPolicy(max_attempts=1)
    )

    waiting = jobs.wait(name, ("Processing",), timeout=30)
    wait_for(
        lambda: jobs.status(name)["message"].startswith("Waiting for a node"),
        30,
        0.1,
        what="the scheduler's message in the status",
    )
    status = jobs.wait(name, timeout=60)
    assert waiting["attempts"] == 1
    assert status["phase"] == "Failed" and status["attempts"] == 1, status
    assert status["error"]["reason"] == "Unschedulable"
    assert "didn't match Pod's node affinity/selector" in status["error"]["message"]
    wait_for(lambda: not jobs.runner_jobs(name), 30, 0.1, what="the stuck Job to be deleted")


def test_a_long_scan_runs_as_shards_merged_into_the_one_pod_result(
    jobs: Jobs, make_operator, store
) -> None:
    make_operator(
        DOCJOBS_OPERATOR__SHARD_THRESHOLD_PAGES="4",
        DOCJOBS_RUNNER__PART_PAGES="2",
        DOCJOBS_OPERATOR__SHARD_PARALLELISM="3",
    )
    pdf, _ = pdf_with_pages(6, seed=21)
    operation = {"kind": "ocr.simple", "output": "detailed"}
    one_pod = jobs.submit(operation, pdf, "application/pdf", "scan.pdf")  # page count unknown
    resource = jobs.prepare(operation, pdf, "application/pdf", "scan.pdf")
    resource["spec"]["input"]["pageCount"] = 6
    jobs.api.create(jobs.path(), resource)
    sharded = resource["metadata"]["name"]

    results = []
    for name in (one_pod, sharded):
        status = jobs.wait(name, timeout=240)
        assert status["phase"] == "Complete" and status["attempts"] == 1, status
        results.append(json.loads(b"".join(store.iter_chunks(status["result"]["key"]))))
    assert results[0] == results[1]
    assert [page["page"] for page in results[1]["data"]["pages"]] == list(range(1, 7))

    by_name = {job["metadata"]["name"]: job for job in jobs.runner_jobs(sharded)}
    assert set(by_name) == {f"{sharded}-a1", f"{sharded}-a1-merge"}
    shards = by_name[f"{sharded}-a1"]["spec"]
    assert (shards["completionMode"], shards["completions"], shards["parallelism"]) == (
        "Indexed",
        3,
        3,
    )
    assert len(jobs.pods(sharded)) == 4, "three shards and the merge, each once"


def _submit_sharded(jobs: Jobs, make_operator, seed: int) -> str:
    """A 6-page scan in three shards of two pages, one shard at a time."""
    make_operator(
        DOCJOBS_OPERATOR__SHARD_THRESHOLD_PAGES="4",
        DOCJOBS_RUNNER__PART_PAGES="2",
        DOCJOBS_OPERATOR__SHARD_PARALLELISM="1",
    )
    pdf, _ = pdf_with_pages(6, seed=seed)
    resource = jobs.prepare({"kind": "ocr.simple"}, pdf, "application/pdf", "scan.pdf")
    resource["spec"]["input"]["pageCount"] = 6
    jobs.api.create(jobs.path(), resource)
    return str(resource["metadata"]["name"])


def test_a_sharded_job_shows_its_progress_and_cancel_stops_every_shard(
    jobs: Jobs, make_operator
) -> None:
    name = _submit_sharded(jobs, make_operator, seed=23)

    wait_for(
        lambda: "1/3 shards done" in jobs.status(name).get("message", ""),
        120,
        0.1,
        what="the first shard to be counted",
    )
    jobs.api.patch(jobs.path(name), {"spec": {"cancel": True}})

    status = jobs.wait(name, timeout=30)
    assert status["phase"] == "Cancelled" and "result" not in status, status
    wait_for(lambda: not jobs.runner_jobs(name), 30, 0.1, what="the shards' Job to be deleted")
    wait_for(lambda: not jobs.pods(name), 30, 0.1, what="every shard's pod to be deleted")


def test_a_killed_shard_is_retried_alone_and_every_page_is_read_once(
    cluster: Cluster, jobs: Jobs, make_operator, store
) -> None:
    name = _submit_sharded(jobs, make_operator, seed=25)
    first = jobs.running_pod(name, 1)
    os.killpg(_pid(cluster, jobs.ns, first["metadata"]["name"]), signal.SIGKILL)

    status = jobs.wait(name, timeout=180)

    assert status["phase"] == "Complete" and status["attempts"] == 1, status
    result = json.loads(b"".join(store.iter_chunks(status["result"]["key"])))
    assert [page["page"] for page in result["data"]["pages"]] == list(range(1, 7))
    index = "batch.kubernetes.io/job-completion-index"
    shard_pods = [p for p in jobs.pods(name) if index in p["metadata"].get("annotations", {})]
    runs = sorted(p["metadata"]["annotations"][index] for p in shard_pods)
    assert runs == ["0", "0", "1", "2"], "only the killed shard ran twice"
