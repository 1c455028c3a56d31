"""Turn a pod's first container into a local command line and environment.

Pure functions (the only I/O is the `lookup` callback for Secrets and
ConfigMaps), so the mapping rules can be read and tested in one place.

Image mapping (documented in tests/rig/README.md):
  * An image is runnable if one component of its repository path is `docjobs`
    or starts with `docjobs-` (docjobs, docjobs/runner, ghcr.io/x/docjobs-runner-gpu).
    DOCJOBS_RIG_IMAGE_PATTERN (a regex searched in the repository path, i.e.
    the image minus tag/digest) replaces that rule. Other images fail the pod
    with reason UnsupportedImage.
  * argv = command + args. With no command, the image entrypoint is taken to
    be the `docjobs` CLI.
  * If argv[0] is `docjobs` and DOCJOBS_RIG_ENTRYPOINT is set (e.g.
    "python3 -m docjobs.cli"), argv[0] is replaced by that prefix.
  * argv[0] must then be an absolute executable path or found on PATH.
"""

from __future__ import annotations

import base64
import math
import os
import re
import shlex
import shutil
from collections.abc import Callable
from decimal import Decimal

from docjobs.kube.client import JSON

# lookup("secrets" | "configmaps", namespace, name) -> object, or None if absent
Lookup = Callable[[str, str, str], "JSON | None"]

DEFAULT_ENTRYPOINT = "docjobs"
DEFAULT_IMAGE_PATTERN = r"(^|/)docjobs(-[^/]*)?(/|$)"
POD_IP = "127.0.0.1"

# Host variables a pod process gets besides its own env; the rest of the
# kubelet's environment is not leaked. DOCJOBS_RIG_PASS_ENV adds names.
PASSTHROUGH_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")


class StartError(Exception):
    """The container cannot be started at all (pod fails)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ConfigError(Exception):
    """A referenced Secret/ConfigMap/key is missing; kubelet retries later
    (reported as waiting: CreateContainerConfigError, as upstream does)."""

    reason = "CreateContainerConfigError"
    retry_seconds = 2.0


class MountError(ConfigError):
    """A secret volume's Secret (or one of its items' keys) is missing: the pod waits in
    ContainerCreating, retried about as often as upstream's volume manager looks again."""

    reason = "ContainerCreating"
    retry_seconds = 0.3


def image_repository(image: str) -> str:
    """`reg:5000/a/b:tag@sha256:..` -> `reg:5000/a/b`."""
    repo = image.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    if ":" in last:
        repo = repo[: len(repo) - len(last)] + last.split(":", 1)[0]
    return repo


def image_allowed(image: str, environ: dict[str, str]) -> bool:
    pattern = environ.get("DOCJOBS_RIG_IMAGE_PATTERN") or DEFAULT_IMAGE_PATTERN
    return re.search(pattern, image_repository(image)) is not None


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion: defined vars are substituted, $$ escapes,
    undefined references stay as written."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(sub, value)


_SUFFIX = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
}


def quantity(q: str) -> Decimal:
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(q).strip())
    if not m or m.group(2) not in _SUFFIX:
        raise ValueError(f"unsupported quantity {q!r}")
    return Decimal(m.group(1)) * _SUFFIX[m.group(2)]


def _field_ref(pod: JSON, path: str) -> str:
    meta, spec = pod["metadata"], pod["spec"]
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str(meta.get(m.group(1), {}).get(m.group(2), ""))
    values = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta["uid"],
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": POD_IP,
        "status.podIPs": POD_IP,
        "status.hostIP": POD_IP,
        "status.hostIPs": POD_IP,
    }
    if path not in values:
        raise StartError("CreateContainerConfigError", f"unsupported fieldRef {path!r}")
    return str(values[path])


def _resource_ref(container: JSON, ref: JSON, node_alloc: dict[str, str]) -> str:
    """limits.cpu etc. Like upstream: unset limits fall back to node
    allocatable; cpu rounds up to whole divisor units."""
    kind, _, res = ref["resource"].partition(".")
    resources = container.get("resources", {})
    raw = resources.get(kind, {}).get(res) or node_alloc.get(res, "0")
    value = quantity(raw) / quantity(ref.get("divisor", "1") or "1")
    return str(math.ceil(value))


def _key_ref(kind: str, ref: JSON, namespace: str, lookup: Lookup) -> str | None:
    obj = lookup(kind, namespace, ref["name"])
    optional = bool(ref.get("optional"))
    data = (obj or {}).get("data") or {}
    if obj is None or ref["key"] not in data:
        if optional:
            return None
        what = f"{kind[:-1]} {ref['name']!r}" + ("" if obj is None else f" key {ref['key']!r}")
        raise ConfigError(f"{what} not found")
    value = data[ref["key"]]
    return base64.b64decode(value).decode("utf-8", "replace") if kind == "secrets" else str(value)


def container_env(pod: JSON, lookup: Lookup, node_alloc: dict[str, str]) -> dict[str, str]:
    """The pod's own environment for containers[0] (envFrom, then env)."""
    container = pod["spec"]["containers"][0]
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for src in container.get("envFrom", []):
        prefix = src.get("prefix", "")
        for kind, key in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
            if key not in src:
                continue
            obj = lookup(kind, ns, src[key]["name"])
            if obj is None:
                if src[key].get("optional"):
                    continue
                raise ConfigError(f"{kind[:-1]} {src[key]['name']!r} not found")
            for k, v in (obj.get("data") or {}).items():
                env[prefix + k] = (
                    base64.b64decode(v).decode("utf-8", "replace") if kind == "secrets" else v
                )
    for var in container.get("env", []):
        name, vf = var["name"], var.get("valueFrom")
        if vf is None:
            env[name] = expand(var.get("value", ""), env)
        elif "fieldRef" in vf:
            env[name] = _field_ref(pod, vf["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in vf:
            env[name] = _resource_ref(container, vf["resourceFieldRef"], node_alloc)
        else:
            kind, ref = (
                ("secrets", vf["secretKeyRef"])
                if "secretKeyRef" in vf
                else ("configmaps", vf["configMapKeyRef"])
            )
            value = _key_ref(kind, ref, ns, lookup)
            if value is not None:
                env[name] = value
    return env


DEFAULT_SECRET_MODE = 0o644


def secret_volumes(pod: JSON, lookup: Lookup) -> dict[str, dict[str, tuple[bytes, int]]]:
    """The secret volumes containers[0] mounts, by mountPath: {file path in the volume:
    (content, mode)}, as the kubelet materialises them (``items`` pick and rename keys, a
    mode per item or ``defaultMode``). Raises MountError while a Secret is missing."""
    ns = pod["metadata"]["namespace"]
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    mounted: dict[str, dict[str, tuple[bytes, int]]] = {}
    for mount in pod["spec"]["containers"][0].get("volumeMounts", []):
        source = volumes.get(mount["name"], {}).get("secret")
        if source is None:
            continue
        name = source["secretName"]
        obj = lookup("secrets", ns, name)
        optional = bool(source.get("optional"))
        if obj is None and not optional:
            raise MountError(
                f'MountVolume.SetUp failed for volume "{mount["name"]}" : secret "{name}" not found'
            )
        data = {k: base64.b64decode(v) for k, v in ((obj or {}).get("data") or {}).items()}
        mode = int(source.get("defaultMode", DEFAULT_SECRET_MODE))
        items = source.get("items") or [{"key": k, "path": k} for k in sorted(data)]
        files: dict[str, tuple[bytes, int]] = {}
        for item in items:
            if item["key"] not in data:
                if optional:
                    continue
                raise MountError(
                    f'MountVolume.SetUp failed for volume "{mount["name"]}" : '
                    f"references non-existent secret key: {item['key']}"
                )
            files[item["path"]] = (data[item["key"]], int(item.get("mode", mode)))
        mounted[mount["mountPath"].rstrip("/")] = files
    return mounted


def under_mounts(value: str, local: dict[str, str]) -> str:
    """``value`` with a leading mountPath (``local``: mountPath -> the directory standing in
    for it) replaced: processes share the host's filesystem, so a path into a volume in the
    pod's env or arguments must name where the kubelet put that volume's files."""
    for mount_path, directory in local.items():
        if value == mount_path or value.startswith(mount_path + "/"):
            return directory + value[len(mount_path) :]
    return value


def host_env(environ: dict[str, str]) -> dict[str, str]:
    names = list(PASSTHROUGH_ENV) + [
        n for n in environ.get("DOCJOBS_RIG_PASS_ENV", "").split(",") if n
    ]
    return {n: environ[n] for n in names if n in environ}


def command_line(pod: JSON, env: dict[str, str], environ: dict[str, str]) -> list[str]:
    """argv for containers[0]; raises StartError if the image is not mapped
    or the executable does not exist. `env` is the final process env (its
    PATH is used for lookup and for $(VAR) expansion)."""
    container = pod["spec"]["containers"][0]
    image = container.get("image", "")
    if not image_allowed(image, environ):
        raise StartError(
            "UnsupportedImage",
            f"image {image!r} is not mapped to a local entrypoint by the rig kubelet "
            "(runnable: images whose repository has a 'docjobs' or 'docjobs-*' component; "
            "see DOCJOBS_RIG_IMAGE_PATTERN)",
        )
    argv = [expand(a, env) for a in container.get("command", []) + container.get("args", [])]
    if not container.get("command"):
        argv = [DEFAULT_ENTRYPOINT, *argv]
    override = environ.get("DOCJOBS_RIG_ENTRYPOINT", "")
    if argv[0] == DEFAULT_ENTRYPOINT and override:
        argv = [*shlex.split(override), *argv[1:]]
    exe = argv[0]
    if os.path.isabs(exe):
        found = exe if os.access(exe, os.X_OK) and os.path.isfile(exe) else None
    else:
        found = shutil.which(exe, path=env.get("PATH", os.defpath))
    if not found:
        hint = (
            " (set DOCJOBS_RIG_ENTRYPOINT to run the docjobs CLI another way)"
            if exe == DEFAULT_ENTRYPOINT
            else ""
        )
        raise StartError("StartError", f'exec: "{exe}": executable file not found in $PATH{hint}')
    return [found, *argv[1:]]


def container_ports(pod: JSON) -> list[int]:
    """The TCP ports containers[0] declares, in order."""
    ports = pod["spec"]["containers"][0].get("ports", [])
    return [int(p["containerPort"]) for p in ports if p.get("protocol", "TCP") == "TCP"]


def remap_ports(argv: list[str], host_ports: dict[int, int]) -> list[str]:
    """Every pod shares the host's network here, so a declared port is moved to a free one:
    an argument that is the port's number (``--port 8000``) or ends in ``=<number>``
    (``--metrics-port=9090``) gets the host port instead."""

    def moved(arg: str) -> str:
        head, eq, tail = arg.rpartition("=")
        number = tail if eq else arg
        if number.isdigit() and int(number) in host_ports:
            return f"{head}{eq}{host_ports[int(number)]}"
        return arg

    return [argv[0], *(moved(a) for a in argv[1:])]
