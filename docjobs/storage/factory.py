"""The object store the settings choose: a runner pod's presigned URLs when it has a
manifest (its URL in a file), S3 when an endpoint is set, else a local directory.

Embedded mode's warm workers are child processes that build their store from their own
environment; :func:`store_environment` hands them the API process's choice, so both always
read and write the same store.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from docjobs.config import Settings
from docjobs.storage.base import ObjectStore
from docjobs.storage.local import LocalStore


def store_from_settings(settings: Settings) -> ObjectStore:
    manifest = settings.runner.manifest_file
    if manifest is not None:  # a Kubernetes runner pod: its attempt's URLs only
        from docjobs.storage.presigned import PresignedStore

        return PresignedStore.fetch(manifest_url(manifest))
    if settings.s3.endpoint:
        from docjobs.storage.s3 import S3Store  # minio only where S3 is used

        return S3Store.from_settings(settings.s3)
    return LocalStore(settings.data_dir.resolve() / "objects")


def manifest_url(manifest_file: Path) -> str:
    """The presigned URL of a runner pod's manifest, from the file its Job's Secret mounts
    (the URL never appears in the pod spec)."""
    return manifest_file.read_text(encoding="utf-8").strip()


def store_environment(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with every store variable replaced by ones naming the store ``settings`` chose.

    Settings given as arguments (``--data-dir``, a test's ``Settings(...)``) are not in the
    environment, and ``DOCJOBS_S3_*`` variables left in it could point elsewhere: a child
    reading only this environment picks the same store as ``store_from_settings(settings)``.
    """
    env = {name: value for name, value in base.items() if not _names_store(name)}
    env["DOCJOBS_DATA_DIR"] = str(settings.data_dir.resolve())
    for field, value in settings.s3.model_dump(exclude_none=True).items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        env[f"DOCJOBS_S3__{field.upper()}"] = text
    return env


def _names_store(variable: str) -> bool:
    name = variable.upper()  # settings read variable names case-insensitively
    return name in ("DOCJOBS_DATA_DIR", "DOCJOBS_S3") or name.startswith("DOCJOBS_S3_")


RUNNER_VARIABLES = frozenset(
    {
        *("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP"),
        *("VIRTUAL_ENV", "LD_LIBRARY_PATH", "TESSDATA_PREFIX", "ANTHROPIC_BASE_URL"),
        *("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"),
        *("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"),
        *("XDG_CACHE_HOME", "HF_HOME", "TORCH_HOME", "DOCTR_CACHE_DIR", "USE_TORCH"),
    }
)
"""What engines read besides ``DOCJOBS_*``: locale, paths, proxies and caches."""
RUNNER_PREFIXES = ("LC_", "PYTHON", "OMP_", "COVERAGE_", "DOCJOBS_")
RUNNER_SECRETS = frozenset({"DOCJOBS_LLM__API_KEY"})
"""The one credential runners read from the environment: Claude's, for llm extraction and
vision OCR. The object store's come from :func:`store_environment`."""
_SECRET_WORDS = frozenset({"KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIALS"})


def runner_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The part of ``base`` a runner worker needs: a worker runs untrusted documents through
    large engines, so it gets no credential of the service it does not use itself (cloud
    keys, tokens, the API's own settings' secrets)."""
    kept: dict[str, str] = {}
    for name, value in base.items():
        upper = name.upper()
        if upper not in RUNNER_VARIABLES and not upper.startswith(RUNNER_PREFIXES):
            continue
        # By whole words: DOCJOBS_LLM__MAX_TOKENS is a setting, GITHUB_TOKEN a credential.
        if upper not in RUNNER_SECRETS and _SECRET_WORDS.intersection(upper.split("_")):
            continue
        kept[name] = value
    return kept
