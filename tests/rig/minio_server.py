"""A MinIO of a test's own, on a fixed port and data directory, that the test may kill and
start again (an object-store outage) without touching the rig's shared MinIO."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import requests

from . import s3
from .fixtures import RIG_DIR, wait_for

ACCESS_KEY = "outage"
SECRET_KEY = "outage-secret"
BUCKET = "docjobs"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _minio_binary() -> Path:
    out = subprocess.run(
        [str(RIG_DIR / "build.sh"), "--print"], text=True, stdout=subprocess.PIPE, check=True
    )
    dirs = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    return Path(dirs["MINIO_BIN"]) / "minio"


@dataclass
class MinioServer:
    data_dir: Path
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def settings(self) -> dict[str, str | bool]:
        """``S3Settings`` fields for this server."""
        return {
            "endpoint": self.endpoint,
            "bucket": BUCKET,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "secure": False,
        }

    def env(self) -> dict[str, str]:
        """The environment of a docjobs process that stores its objects here."""
        return {
            f"DOCJOBS_S3__{name.upper()}": str(value).lower() if value is False else str(value)
            for name, value in self.settings().items()
        }

    def start(self) -> MinioServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.data_dir),
            "MINIO_ROOT_USER": ACCESS_KEY,
            "MINIO_ROOT_PASSWORD": SECRET_KEY,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
        }
        with (self.data_dir.parent / "minio.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *(str(_minio_binary()), "server", "--quiet"),
                    *(f"--address={self.endpoint}", str(self.data_dir)),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._ready, 60, 0.2, what=f"MinIO on {self.endpoint}")
        s3.ensure_bucket(self.endpoint, ACCESS_KEY, SECRET_KEY, BUCKET)
        return self

    def _ready(self) -> bool:
        assert self.process is not None and self.process.poll() is None, "MinIO exited"
        try:
            url = f"http://{self.endpoint}/minio/health/ready"
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def kill(self) -> None:
        """SIGKILL: the store is gone at once, mid-request for anyone using it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
