"""Certificates, keys and kubeconfig for the local cluster, made with the
openssl CLI so the rig needs no Python crypto package."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

# Names the apiserver's serving certificate must cover: loopback for the rig,
# and the in-cluster service names/IP so nothing rejects it if used that way.
SERVING_SANS = [
    "IP:127.0.0.1",
    "DNS:localhost",
    "IP:10.0.0.1",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def generate(pki: Path) -> str:
    """Create CA, serving cert, service-account key pair and the admin token
    file in `pki`. Returns the admin bearer token."""
    pki.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        "/CN=docjobs-rig-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        cwd=pki,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=kube-apiserver",
        "-keyout",
        "apiserver.key",
        "-out",
        "apiserver.csr",
        cwd=pki,
    )
    (pki / "apiserver.ext").write_text(
        "subjectAltName=" + ",".join(SERVING_SANS) + "\n"
        "extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n"
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        "apiserver.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        "apiserver.ext",
        "-out",
        "apiserver.crt",
        cwd=pki,
    )
    # Service-account token signing pair (apiserver verifies, KCM signs).
    _openssl(
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "sa.key",
        cwd=pki,
    )
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    token = secrets.token_hex(24)
    # Static token auth: token,user,uid,"group". system:masters passes RBAC.
    (pki / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
    for key in pki.glob("*.key"):
        key.chmod(0o600)
    return token


def admin_token(pki: Path) -> str:
    """The admin's static token, as :func:`generate` wrote it."""
    return (pki / "tokens.csv").read_text().split(",", 1)[0]


def write_kubeconfig(path: Path, server: str, ca_file: Path, token: str) -> None:
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: docjobs-rig
  cluster:
    server: {server}
    certificate-authority: {ca_file}
users:
- name: admin
  user:
    token: {token}
contexts:
- name: docjobs-rig
  context:
    cluster: docjobs-rig
    user: admin
    namespace: default
current-context: docjobs-rig
"""
    )
    path.chmod(0o600)
