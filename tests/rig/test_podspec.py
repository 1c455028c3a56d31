"""Unit tests for the process kubelet's image/command/env mapping (no cluster)."""

from __future__ import annotations

import base64
import sys
from typing import Any

import pytest

from . import podspec

PATH_ENV = {"PATH": "/usr/bin:/bin"}


def pod(container: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "x"}},
        "spec": {"nodeName": "cpu-0", "containers": [{"name": "c", **container}]},
    }


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("docjobs", True),
        ("docjobs:1.0", True),
        ("docjobs/runner:test", True),
        ("ghcr.io/acme/docjobs-runner-gpu:1.0", True),
        ("localhost:5000/docjobs-runner@sha256:abc", True),
        ("busybox:1.36", False),
        ("python:3.11", False),
        ("acme/mydocjobs:1", False),
    ],
)
def test_image_mapping(image: str, allowed: bool) -> None:
    assert podspec.image_allowed(image, {}) is allowed


def test_image_pattern_override() -> None:
    assert podspec.image_allowed("busybox:1", {"DOCJOBS_RIG_IMAGE_PATTERN": "^busybox$"})


def test_repository_strips_tag_and_digest_not_port() -> None:
    assert podspec.image_repository("reg:5000/a/b:tag@sha256:x") == "reg:5000/a/b"


def test_command_on_path_with_var_expansion() -> None:
    c = {"image": "docjobs/runner:test", "command": ["python3", "-c"], "args": ["$(A) $$(A)"]}
    argv = podspec.command_line(pod(c), {**PATH_ENV, "A": "1"}, {})
    assert argv[0].endswith("/python3") and argv[1:] == ["-c", "1 $(A)"]


def test_no_command_means_docjobs_cli_and_override_replaces_it() -> None:
    c = {"image": "docjobs-runner:1", "args": ["run", "--job", "j1"]}
    environ = {"DOCJOBS_RIG_ENTRYPOINT": f"{sys.executable} -m docjobs.cli"}
    assert podspec.command_line(pod(c), PATH_ENV, environ) == [
        sys.executable,
        "-m",
        "docjobs.cli",
        "run",
        "--job",
        "j1",
    ]


def test_missing_executable_and_unmapped_image_are_start_errors() -> None:
    with pytest.raises(podspec.StartError) as e:
        podspec.command_line(pod({"image": "docjobs", "command": ["nope-xyz"]}), PATH_ENV, {})
    assert e.value.reason == "StartError" and "nope-xyz" in e.value.message
    with pytest.raises(podspec.StartError) as e:
        podspec.command_line(pod({"image": "busybox", "command": ["true"]}), PATH_ENV, {})
    assert e.value.reason == "UnsupportedImage"


def lookup(kind: str, ns: str, name: str) -> dict[str, Any] | None:
    objects = {
        ("secrets", "creds"): {"data": {"token": base64.b64encode(b"s3cr3t").decode()}},
        ("configmaps", "cfg"): {"data": {"mode": "fast", "level": "2"}},
    }
    return objects.get((kind, name))


def test_env_resolution() -> None:
    c = {
        "image": "docjobs",
        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
        "env": [
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
            {
                "name": "OPT",
                "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}},
            },
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {
                "name": "MEM_MI",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {"name": "MSG", "value": "$(NAME)-$(MODE)"},
        ],
    }
    env = podspec.container_env(pod(c), lookup, {"cpu": "4", "memory": "16Gi"})
    assert env == {
        "CFG_mode": "fast",
        "CFG_level": "2",
        "NAME": "p",
        "APP": "x",
        "IP": "127.0.0.1",
        "TOKEN": "s3cr3t",
        "MODE": "fast",
        "CPU": "1",
        "MEM_MI": "64",
        "MSG": "p-fast",
    }


def test_missing_secret_is_a_retryable_config_error() -> None:
    c = {
        "image": "docjobs",
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "late", "key": "x"}}}],
    }
    with pytest.raises(podspec.ConfigError, match="late"):
        podspec.container_env(pod(c), lookup, {})


def _with_volumes(volumes: list[dict[str, Any]], mounts: list[dict[str, Any]]) -> Any:
    made = pod({"image": "docjobs", "volumeMounts": mounts})
    made["spec"]["volumes"] = volumes
    return made


def test_secret_volumes_hold_their_keys_as_files_with_their_modes() -> None:
    volumes = [
        {"name": "all", "secret": {"secretName": "creds"}},
        {
            "name": "picked",
            "secret": {
                "secretName": "creds",
                "defaultMode": 0o400,
                "items": [{"key": "token", "path": "dir/url"}],
            },
        },
        {"name": "scratch", "emptyDir": {}},
    ]
    mounts = [
        {"name": "all", "mountPath": "/etc/creds"},
        {"name": "picked", "mountPath": "/var/run/m/", "readOnly": True},
        {"name": "scratch", "mountPath": "/tmp"},
    ]

    mounted = podspec.secret_volumes(_with_volumes(volumes, mounts), lookup)

    assert mounted == {
        "/etc/creds": {"token": (b"s3cr3t", 0o644)},
        "/var/run/m": {"dir/url": (b"s3cr3t", 0o400)},
    }


def test_a_missing_secret_volume_waits_in_container_creating() -> None:
    volumes = [{"name": "m", "secret": {"secretName": "late"}}]
    mounts = [{"name": "m", "mountPath": "/m"}]
    with pytest.raises(podspec.MountError, match='secret "late" not found') as raised:
        podspec.secret_volumes(_with_volumes(volumes, mounts), lookup)
    assert raised.value.reason == "ContainerCreating"
    assert raised.value.retry_seconds < 1, "the pod starts soon after its Secret appears"
    missing_key = [
        {"name": "m", "secret": {"secretName": "creds", "items": [{"key": "url", "path": "u"}]}}
    ]
    with pytest.raises(podspec.MountError, match="non-existent secret key: url"):
        podspec.secret_volumes(_with_volumes(missing_key, mounts), lookup)
    optional = [{"name": "m", "secret": {"secretName": "late", "optional": True}}]
    assert podspec.secret_volumes(_with_volumes(optional, mounts), lookup) == {"/m": {}}


def test_paths_into_a_volume_point_at_its_local_directory() -> None:
    local = {"/var/run/m": "/state/pods/ns_p/volumes/var_run_m"}
    assert podspec.under_mounts("/var/run/m/url", local) == "/state/pods/ns_p/volumes/var_run_m/url"
    assert podspec.under_mounts("/var/run/m", local) == local["/var/run/m"]
    assert podspec.under_mounts("/var/run/mx/url", local) == "/var/run/mx/url"
    assert podspec.under_mounts("see /var/run/m/url", local) == "see /var/run/m/url"


def test_host_env_is_minimal() -> None:
    environ = {
        "PATH": "/bin",
        "HOME": "/root",
        "SECRET_TOKEN": "x",
        "DOCJOBS_RIG_PASS_ENV": "EXTRA",
        "EXTRA": "1",
    }
    assert podspec.host_env(environ) == {"PATH": "/bin", "HOME": "/root", "EXTRA": "1"}


def test_declared_ports_move_to_the_host_ports_chosen_for_the_pod() -> None:
    spec = pod(
        {
            "image": "docjobs",
            "ports": [
                {"name": "http", "containerPort": 8000},
                {"containerPort": 9090, "protocol": "TCP"},
                {"containerPort": 53, "protocol": "UDP"},
            ],
        }
    )
    ports = podspec.container_ports(spec)
    assert ports == [8000, 9090]
    argv = ["docjobs", "serve", "--port", "8000", "--metrics-port=9090", "--workers=2", "8001"]
    assert podspec.remap_ports(argv, {8000: 41000, 9090: 41001}) == [
        "docjobs",
        "serve",
        "--port",
        "41000",
        "--metrics-port=41001",
        "--workers=2",
        "8001",
    ]
