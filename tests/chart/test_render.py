"""The chart as rendered by the pinned helm, without a cluster: lint, schema, CRDs, settings,
the commands it runs, hardened pods."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from docjobs.cli import app
from docjobs.config import OperatorSettings, Settings
from docjobs.domain.models import Engine, InputRef, JobSpec
from docjobs.operator.builders import build_job
from docjobs.operator.manifests import runner_doctr

from .conftest import CHART, RELEASE, REPO, VALUES, Manifest, Render, find, run_helm

VALUES_FILES = sorted(VALUES.glob("*.yaml"))
WRONG_VALUES = sorted((VALUES / "wrong").glob("*.yaml"))
POD_KINDS = ("Deployment", "StatefulSet")


def _ids(paths: list[Path]) -> list[str]:
    return [path.stem for path in paths]


def test_lint_strict_passes_for_every_values_file(helm: str) -> None:
    for values in VALUES_FILES:
        done = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(values))
        assert done.returncode == 0, f"{values.name}:\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("values", WRONG_VALUES, ids=_ids(WRONG_VALUES))
def test_wrong_values_are_refused_with_a_readable_error(helm: str, values: Path) -> None:
    # Each file's first line names the error a user must see.
    expected = values.read_text().splitlines()[0].removeprefix("# error: ")
    done = run_helm(helm, "template", RELEASE, str(CHART), "-f", str(values))
    assert done.returncode != 0
    assert expected in done.stderr, done.stderr


def test_chart_crds_are_the_repository_crds(render: Render) -> None:
    copies = sorted((CHART / "files" / "crds").glob("*.yaml"))
    originals = sorted((REPO / "crds").glob("*.yaml"))
    assert [p.name for p in copies] == [p.name for p in originals]
    for copy, original in zip(copies, originals, strict=True):
        assert copy.read_bytes() == original.read_bytes(), (
            f"{copy} differs from {original}: cp crds/*.yaml charts/docjobs/files/crds/"
        )
    manifests = render(VALUES / "defaults.yaml")
    for original in originals:
        expected = yaml.safe_load(original.read_text())
        rendered = dict(find(manifests, "CustomResourceDefinition", expected["metadata"]["name"]))
        meta = rendered.pop("metadata")
        assert meta["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE
        expected.pop("metadata")
        assert rendered == expected
    without = render(VALUES / "defaults.yaml", "docjobs", "--set", "crds.enabled=false")
    assert not [m for m in without if m["kind"] == "CustomResourceDefinition"]


def _keys_without_comment(
    node: yaml.Node, schema: dict[str, Any], lines: list[str], path: str
) -> Iterator[str]:
    """Values the chart defines (its schema's ``properties``) with no comment line above
    them. A group of values (``api:``) is described by its members; Kubernetes types (a
    schema with a ``title``) and free-form maps are values, not described key by key; entries
    the user names (pools) are not keys of the chart."""
    if not isinstance(node, yaml.MappingNode):
        return
    properties = schema.get("properties")
    for key, value in node.value:
        sub = properties.get(key.value) if properties else schema.get("additionalProperties")
        if not isinstance(sub, dict):
            continue
        group = "properties" in sub and "title" not in sub
        if properties and not group and not lines[key.start_mark.line - 1].lstrip().startswith("#"):
            yield f"{path}{key.value}"
        if "title" not in sub:
            yield from _keys_without_comment(value, sub, lines, f"{path}{key.value}.")


def test_every_value_has_a_comment() -> None:
    text = (CHART / "values.yaml").read_text()
    schema = json.loads((CHART / "values.schema.json").read_text())
    root = yaml.compose(text)
    assert root is not None
    missing = list(_keys_without_comment(root, schema, text.splitlines(), ""))
    assert not missing


def _pod_specs(manifests: list[Manifest]) -> Iterator[tuple[str, dict[str, Any]]]:
    for manifest in manifests:
        if manifest["kind"] in POD_KINDS:
            yield manifest["metadata"]["name"], manifest["spec"]["template"]["spec"]


def _chart_settings(manifests: list[Manifest], monkeypatch: pytest.MonkeyPatch) -> OperatorSettings:
    """The operator's settings exactly as its pod would read them from the ConfigMap."""
    config = find(manifests, "ConfigMap", f"{RELEASE}-docjobs-config")["data"]
    for name, value in config.items():
        monkeypatch.setenv(name, value)
    return Settings().operator


def _runner_jobs(settings: OperatorSettings) -> list[Manifest]:
    spec = {
        "job_id": "job_abc",
        "tenant": "acme",
        "input": InputRef(key="k", file_name="f", content_type="image/png", sha256="0", size=1),
        "created_at": "2026-01-01T00:00:00Z",
    }
    resource = {"metadata": {"name": "job-abc", "namespace": "docjobs", "uid": "u-1"}}
    return [
        build_job(
            resource,
            JobSpec.model_validate({**spec, "operation": {"kind": kind}}),
            1,
            settings,
            "job-abc-a1-manifest-0a1b2c3d",
        )
        for kind in ("ocr.simple", "ocr.advanced")
    ]


@pytest.mark.parametrize("values", VALUES_FILES, ids=_ids(VALUES_FILES))
def test_configmap_holds_only_real_settings(
    render: Render, values: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = render(values)
    config = find(manifests, "ConfigMap", f"{RELEASE}-docjobs-config")["data"]
    operator_fields = OperatorSettings.model_fields
    for name in config:
        section, _, field = name.removeprefix("DOCJOBS_").lower().partition("__")
        if section == "operator":
            assert field in operator_fields, name
        else:
            assert section in Settings.model_fields, name
            model = Settings.model_fields[section].annotation
            assert not field or field in model.model_fields, name  # type: ignore[union-attr]
    settings = _chart_settings(manifests, monkeypatch)
    assert Settings().backend == "kubernetes"
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    given = yaml.safe_load(values.read_text()).get("runner", {})
    engines = {**chart_values["runner"]["engines"], **given.get("engines", {})}
    doctr = engines["doctr"]
    assert settings.engines["doctr"].limits == doctr["limits"]
    assert settings.engines["doctr"].pool == doctr["pool"]


def _commands(manifests: list[Manifest], settings: OperatorSettings) -> list[list[str]]:
    containers = [c for _, pod in _pod_specs(manifests) for c in pod["containers"]]
    for job in _runner_jobs(settings):
        containers.extend(job["spec"]["template"]["spec"]["containers"])
    return [
        [*c.get("command", []), *c.get("args", [])]
        for c in containers
        if "docjobs" in c["image"].rsplit(":", 1)[0]
    ]


@pytest.mark.parametrize("values", VALUES_FILES, ids=_ids(VALUES_FILES))
def test_every_command_the_chart_runs_exists_in_the_cli(
    render: Render, values: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = render(values)
    commands = _commands(manifests, _chart_settings(manifests, monkeypatch))
    workers = any(name.endswith("-workers") for name, _ in _pod_specs(manifests))
    assert {c[1] for c in commands} == {"serve", "operator", "runner"} | (
        {"workers"} if workers else set()
    )
    cli: Any = typer.main.get_command(app)  # typer's own click group
    for command in commands:
        assert command[0] == "docjobs", command
        sub = cli.commands.get(command[1])
        assert sub is not None, f"docjobs has no subcommand {command[1]!r}"
        # Parsing refuses unknown options and bad values, as the real command would.
        sub.make_context(command[1], list(command[2:]), resilient_parsing=False)
    dockerfile = (REPO / "images" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["docjobs"]' in dockerfile


def test_image_is_multi_stage_non_root_and_pinned() -> None:
    lines = (REPO / "images" / "Dockerfile").read_text().splitlines()
    base = next(line for line in lines if line.startswith("ARG PYTHON_IMAGE="))
    assert re.fullmatch(r"ARG PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim-\w+(@sha256:\w+)?", base)
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) == 2 and stages[0].endswith(" AS build")
    final = lines[lines.index(stages[-1]) :]
    assert "USER 10001:10001" in final
    assert not [line for line in final if re.search(r"\b(gcc|build-essential|pip install)\b", line)]


@pytest.mark.parametrize("values", VALUES_FILES, ids=_ids(VALUES_FILES))
def test_pods_are_hardened(render: Render, values: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifests = render(values)
    pods = list(_pod_specs(manifests))
    settings = _chart_settings(manifests, monkeypatch)
    pods += [(j["metadata"]["name"], j["spec"]["template"]["spec"]) for j in _runner_jobs(settings)]
    for name, pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert "memory" in container["resources"]["limits"], name


def test_runner_pods_get_no_token_and_the_claude_key_only_by_reference(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = VALUES / "bundled-minio.yaml"
    literal = yaml.safe_load(values.read_text())["llm"]["apiKey"]
    manifests = render(values)
    runner_account = find(manifests, "ServiceAccount", f"{RELEASE}-docjobs-runner")
    assert runner_account["automountServiceAccountToken"] is False
    settings = _chart_settings(manifests, monkeypatch)
    for job in _runner_jobs(settings):
        pod = job["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == f"{RELEASE}-docjobs-runner"
        assert pod["automountServiceAccountToken"] is False
        assert literal not in yaml.safe_dump(job)
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        ref = env["DOCJOBS_LLM__API_KEY"]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == f"{RELEASE}-docjobs-llm"
        assert find(manifests, "Secret", ref["name"])["stringData"][ref["key"]] == literal
    config = find(manifests, "ConfigMap", f"{RELEASE}-docjobs-config")
    assert literal not in yaml.safe_dump(config)


def test_gpu_pool_values_reach_docTR_runner_pods(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _chart_settings(render(VALUES / "gpu-pool.yaml"), monkeypatch)
    tesseract, doctr = (j["spec"]["template"]["spec"] for j in _runner_jobs(settings))
    assert doctr["runtimeClassName"] == "nvidia"
    assert doctr["priorityClassName"] == "docjobs-gpu"
    assert doctr["nodeSelector"] == {"cloud.example.com/accelerator": "nvidia-l4"}
    assert doctr["containers"][0]["resources"]["limits"] == {
        "memory": "12Gi",
        "nvidia.com/gpu": "1",
    }
    assert (
        doctr["containers"][0]["image"] == "registry.example.com/docjobs/docjobs-gpu:0.1.0-cuda12"
    )
    assert tesseract["runtimeClassName"] == "gvisor"
    assert "nvidia.com/gpu" not in tesseract["containers"][0]["resources"]["limits"]


def test_operator_is_one_replica_recreated_and_watches_its_namespace(render: Render) -> None:
    manifests = render(VALUES / "defaults.yaml", "team-a")
    operator = find(manifests, "Deployment", f"{RELEASE}-docjobs-operator")
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    assert "--namespace=team-a" in operator["spec"]["template"]["spec"]["containers"][0]["args"]
    wide = render(VALUES / "cluster-wide.yaml", "team-a")
    args = find(wide, "Deployment", f"{RELEASE}-docjobs-operator")["spec"]["template"]["spec"]
    assert not [a for a in args["containers"][0]["args"] if a.startswith("--namespace")]
    assert find(wide, "ClusterRole", f"team-a-{RELEASE}-docjobs-operator")


def test_operator_progress_interval_reaches_the_operator(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = render(VALUES / "defaults.yaml", "docjobs", "--set", "operator.progressSeconds=5")
    assert _chart_settings(manifests, monkeypatch).progress_seconds == 5


EXAMPLES = CHART / "examples"


def test_gitops_examples_install_this_chart_with_valid_values(
    helm: str, tmp_path: Path, render: Render
) -> None:
    application = yaml.safe_load((EXAMPLES / "argocd-application.yaml").read_text())
    chart_source, templates_source = application["spec"]["sources"]
    assert (REPO / chart_source["path"]) == CHART
    assert (REPO / templates_source["path"]) == EXAMPLES / "templates"
    flux = list(yaml.safe_load_all((EXAMPLES / "flux-helmrelease.yaml").read_text()))
    release = next(d for d in flux if d["kind"] == "HelmRelease")
    assert REPO / release["spec"]["chart"]["spec"]["chart"] == CHART
    kustomization = next(d for d in flux if d["kind"] == "Kustomization")
    assert REPO / kustomization["spec"]["path"] == EXAMPLES / "templates"
    for name, values in (
        ("argocd", chart_source["helm"]["valuesObject"]),
        ("flux", release["spec"]["values"]),
    ):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(values))
        assert find(render(path), "Deployment", f"{RELEASE}-docjobs-operator")


def test_gitops_templates_are_valid_document_templates() -> None:
    from docjobs.kube.resources import LABEL_TENANT, DocumentTemplateSpec

    listed = yaml.safe_load((EXAMPLES / "templates" / "kustomization.yaml").read_text())
    assert sorted(listed["resources"]) == sorted(
        p.name for p in (EXAMPLES / "templates").glob("*.yaml") if p.name != "kustomization.yaml"
    )
    for file in listed["resources"]:
        template = yaml.safe_load((EXAMPLES / "templates" / file).read_text())
        spec = DocumentTemplateSpec.model_validate(template["spec"])
        assert template["metadata"]["labels"][LABEL_TENANT] == spec.tenant


def _container_settings(
    manifests: list[Manifest], deployment: str, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The settings a Deployment's container reads: the ConfigMap, then its plain env."""
    with monkeypatch.context() as env:
        _chart_settings(manifests, env)
        pod = find(manifests, "Deployment", f"{RELEASE}-docjobs-{deployment}")
        for entry in pod["spec"]["template"]["spec"]["containers"][0]["env"]:
            if "value" in entry:
                env.setenv(entry["name"], entry["value"])
        return Settings()


def test_workers_run_with_the_operators_rules_and_claim_only_documentjobs(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = [
        "--set",
        "config.DOCJOBS_JOBS__MAX_RUNNING_PER_TENANT=3",
        "--set",
        "metrics.serviceMonitor.enabled=true",
    ]
    manifests = render(
        VALUES / "bundled-minio.yaml", "docjobs", "--set", "workers.port=9100", *config
    )
    workers = _container_settings(manifests, "workers", monkeypatch)
    api = _container_settings(manifests, "api", monkeypatch)
    operator = _container_settings(manifests, "operator", monkeypatch)
    # Which jobs a worker may claim, and how long a claim holds, are the operator's rules.
    assert workers.operator.shard_threshold_pages == operator.operator.shard_threshold_pages
    assert workers.runner.part_pages == operator.runner.part_pages == 25
    assert workers.jobs.max_running_per_tenant == operator.jobs.max_running_per_tenant == 3
    assert workers.kubernetes.claim_seconds == api.kubernetes.claim_seconds
    assert workers.workers.concurrency == 2
    assert operator.operator.claim_grace_seconds == 5

    deployment = find(manifests, "Deployment", f"{RELEASE}-docjobs-workers")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert pod["serviceAccountName"] == f"{RELEASE}-docjobs-workers"
    assert pod["terminationGracePeriodSeconds"] > workers.workers.drain_seconds
    container = pod["containers"][0]
    api_pod = find(manifests, "Deployment", f"{RELEASE}-docjobs-api")["spec"]["template"]
    assert container["image"] == api_pod["spec"]["containers"][0]["image"]
    assert container["livenessProbe"]["httpGet"]["port"] == "http"
    assert container["ports"] == [{"name": "http", "containerPort": 9100, "protocol": "TCP"}]
    assert container["args"] == ["workers", "--port", "9100"]  # the port it listens on
    # S3 and Claude credentials only: never the API keys' or the webhooks' Secret.
    secrets = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert secrets == {f"{RELEASE}-docjobs-s3", f"{RELEASE}-docjobs-llm"}
    role = find(manifests, "Role", f"{RELEASE}-docjobs-workers")
    assert role["rules"] == [
        {
            "apiGroups": ["docjobs.io"],
            "resources": ["documentjobs"],
            "verbs": ["get", "list", "watch", "patch"],
        },
        {
            "apiGroups": ["docjobs.io"],
            "resources": ["documentjobs/status"],
            "verbs": ["get", "patch"],
        },
    ]
    binding = find(manifests, "RoleBinding", f"{RELEASE}-docjobs-workers")
    assert binding["subjects"][0]["name"] == pod["serviceAccountName"]
    policy = find(manifests, "NetworkPolicy", f"{RELEASE}-docjobs-workers")["spec"]
    assert policy["ingress"] == [{"ports": [{"protocol": "TCP", "port": 9100}]}]
    monitor = find(manifests, "ServiceMonitor", f"{RELEASE}-docjobs-workers")["spec"]
    service = find(manifests, "Service", f"{RELEASE}-docjobs-workers-metrics")
    assert monitor["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    minio = find(manifests, "NetworkPolicy", f"{RELEASE}-docjobs-minio")["spec"]["podSelector"]
    reached = [rule.get("to", [{}])[0] for rule in policy["egress"]]
    assert {"podSelector": minio} in reached


def test_without_workers_the_operator_starts_every_job_at_once(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = render(VALUES / "defaults.yaml", "docjobs", "--set", "workers.replicas=0")
    assert not [m for m in manifests if "-workers" in m["metadata"]["name"]]
    assert _chart_settings(manifests, monkeypatch).claim_grace_seconds == 0

    autoscaled = ["--set", "workers.replicas=0", "--set", "workers.autoscaled=true"]
    scaled = render(VALUES / "defaults.yaml", "docjobs", *autoscaled)
    workers = find(scaled, "Deployment", f"{RELEASE}-docjobs-workers")
    assert "replicas" not in workers["spec"]  # the autoscaler's, kept across upgrades
    assert _chart_settings(scaled, monkeypatch).claim_grace_seconds == 5


def test_queue_depth_by_tenant_is_a_value(render: Render, monkeypatch: pytest.MonkeyPatch) -> None:
    manifests = render(
        VALUES / "defaults.yaml", "docjobs", "--set", "operator.queueMetricsByTenant=false"
    )
    assert _chart_settings(manifests, monkeypatch).queue_metrics_by_tenant is False
    assert _chart_settings(render(VALUES / "defaults.yaml"), monkeypatch).queue_metrics_by_tenant


def _pod_labels(manifests: list[Manifest], deployment: str) -> dict[str, str]:
    found = find(manifests, "Deployment", f"{RELEASE}-docjobs-{deployment}")
    labels: dict[str, str] = found["spec"]["template"]["metadata"]["labels"]
    return labels


def test_gpu_workers_claim_docTR_on_the_gpu_pool_with_the_runners_weights(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = render(
        VALUES / "gpu-workers.yaml", "docjobs", "--set", "metrics.serviceMonitor.enabled=true"
    )
    gpu = _container_settings(manifests, "gpu-workers", monkeypatch)
    cpu = _container_settings(manifests, "workers", monkeypatch)
    operator = _chart_settings(manifests, monkeypatch)
    assert gpu.workers.engines == [Engine.DOCTR]
    assert Engine.DOCTR not in cpu.workers.engines
    assert set(operator.claimed_engines) == {*cpu.workers.engines, *gpu.workers.engines}
    assert gpu.workers.concurrency == 1
    # docTR reads what runner pods of docTR jobs read, batched across documents as set.
    runners = runner_doctr(operator)
    assert gpu.doctr.detection_arch == runners.detection_arch == "db_mobilenet_v3_large"
    assert gpu.doctr.batch_documents == 16

    deployment = find(manifests, "Deployment", f"{RELEASE}-docjobs-gpu-workers")
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    doctr_job = _runner_jobs(operator)[1]["spec"]["template"]["spec"]
    assert container["image"] == doctr_job["containers"][0]["image"]
    assert container["image"] == "registry.example.com/docjobs/docjobs-gpu:0.1.0-cuda12"
    assert container["args"][0] == "workers"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"docjobs.io/pool": "gpu"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["terminationGracePeriodSeconds"] > gpu.workers.drain_seconds
    names = [entry["name"] for entry in container["env"]]
    assert len(names) == len(set(names))
    # The workers' ServiceAccount; neither Deployment's selector takes the other's pods.
    assert pod["serviceAccountName"] == f"{RELEASE}-docjobs-workers"
    gpu_selector = deployment["spec"]["selector"]["matchLabels"]
    cpu_selector = find(manifests, "Deployment", f"{RELEASE}-docjobs-workers")["spec"]["selector"][
        "matchLabels"
    ]
    assert not gpu_selector.items() <= _pod_labels(manifests, "workers").items()
    assert not cpu_selector.items() <= _pod_labels(manifests, "gpu-workers").items()
    # docTR needs no Claude: no key, and its NetworkPolicy reaches no more than S3 and the
    # API server.
    assert "DOCJOBS_LLM__API_KEY" not in names
    assert "DOCJOBS_LLM__API_KEY" in [e["name"] for e in _cpu_container(manifests)["env"]]
    policy = find(manifests, "NetworkPolicy", f"{RELEASE}-docjobs-gpu-workers")["spec"]
    assert policy["podSelector"]["matchLabels"] == gpu_selector
    cpu_policy = find(manifests, "NetworkPolicy", f"{RELEASE}-docjobs-workers")["spec"]
    assert len(policy["egress"]) == len(cpu_policy["egress"]) - 1
    monitor = find(manifests, "ServiceMonitor", f"{RELEASE}-docjobs-gpu-workers")["spec"]
    service = find(manifests, "Service", f"{RELEASE}-docjobs-gpu-workers-metrics")
    assert monitor["selector"]["matchLabels"] == service["spec"]["selector"] == gpu_selector


def _cpu_container(manifests: list[Manifest]) -> dict[str, Any]:
    deployment = find(manifests, "Deployment", f"{RELEASE}-docjobs-workers")
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


CPU_ENGINES = ["convert", "tesseract", "vision", "extract", "office"]


@pytest.mark.parametrize(
    ("workers", "gpu_workers", "claimed"),
    [
        ("replicas=2", "replicas=0", CPU_ENGINES),
        ("replicas=0", "replicas=1", ["doctr"]),
        ("replicas=0", "autoscaled=true", ["doctr"]),  # KEDA may scale it up from zero
        ("replicas=2", "replicas=1", [*CPU_ENGINES, "doctr"]),
        ("replicas=0", "replicas=0", []),
    ],
    ids=["cpu-only", "gpu-only", "gpu-autoscaled", "both", "none"],
)
def test_the_operator_leaves_to_workers_only_the_engines_they_claim(
    render: Render,
    monkeypatch: pytest.MonkeyPatch,
    workers: str,
    gpu_workers: str,
    claimed: list[str],
) -> None:
    manifests = render(
        VALUES / "defaults.yaml",
        "docjobs",
        "--set",
        f"workers.{workers}",
        "--set",
        f"gpuWorkers.{gpu_workers}",
    )
    operator = _chart_settings(manifests, monkeypatch)
    assert operator.claimed_engines == [Engine(name) for name in claimed]
    assert operator.claim_grace_seconds == (5 if claimed else 0)
    deployments = {m["metadata"]["name"] for m in manifests if m["kind"] == "Deployment"}
    assert (f"{RELEASE}-docjobs-gpu-workers" in deployments) == ("doctr" in claimed)
    assert (f"{RELEASE}-docjobs-workers" in deployments) == ("convert" in claimed)
    # Whichever workers run, they get the workers' ServiceAccount and Role, and only then.
    kinds = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    shared = {
        ("ServiceAccount", f"{RELEASE}-docjobs-workers"),
        ("Role", f"{RELEASE}-docjobs-workers"),
        ("RoleBinding", f"{RELEASE}-docjobs-workers"),
    }
    if claimed:
        assert shared <= kinds
    else:
        assert not shared & kinds
