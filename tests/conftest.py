"""Shared fixtures: a real ``docjobs serve`` process on loopback, and API keys for it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """One ``docjobs serve`` process; restartable on the same data directory and port."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    """Given to both ``serve`` and ``keys create``, e.g. ``--backend kubernetes --namespace NS``."""
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> Server:
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                str(BIN / "docjobs"),
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                *self.args,
            ],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or busy
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def key(self, tenant: str, plan: str = "business") -> str:
        environment = {**os.environ, **self.env}
        if not self.args and environment.get("DOCJOBS_BACKEND", "embedded") == "embedded":
            return self._embedded_key(tenant, plan, environment)
        out = subprocess.run(
            [
                str(BIN / "docjobs"),
                "keys",
                "create",
                "--tenant",
                tenant,
                "--plan",
                plan,
                "--data-dir",
                str(self.data_dir),
                *self.args,
            ],
            check=True,
            capture_output=True,
            text=True,
            env=environment,
        ).stdout
        return out.strip().splitlines()[-1]

    def _embedded_key(self, tenant: str, plan: str, environment: dict[str, str]) -> str:
        """What ``docjobs keys create`` does in embedded mode, in this process: the same key
        store on the same database, without a process start (and its imports) per key."""
        from docjobs.backends.embedded.database import SQLiteDatabase
        from docjobs.backends.embedded.keys import SQLiteKeyStore
        from docjobs.config import RateLimitSettings

        given = environment.get("DOCJOBS_RATE_LIMITS__PLANS")
        plans = json.loads(given) if given else RateLimitSettings().plans
        db = SQLiteDatabase(self.data_dir.resolve() / "docjobs.db")
        try:
            key, _ = SQLiteKeyStore(db, plans).create(tenant, plan)
        finally:
            db.close()
        return key

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Many tests share this server's first key: lift its plan's limit (free stays at 10/min).
    plans = json.dumps(
        {"free": "10/minute", "starter": "30/minute", "pro": "60/minute", "business": "6000/minute"}
    )
    srv = Server(
        tmp_path_factory.mktemp("shared") / "data", env={"DOCJOBS_RATE_LIMITS__PLANS": plans}
    ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def api_key(server: Server) -> str:
    return server.key("acme")


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[callable]:
    made: list[Server] = []

    def make(**env: str) -> Server:
        srv = Server(tmp_path / f"data{len(made)}", env=env)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.stop()
